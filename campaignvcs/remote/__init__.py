"""Remotes: the rclone transport, the remote layout, and push / fetch / clone mechanics."""
