"""``python -m campaignvcs`` runs the ``camp`` command."""

from campaignvcs.cli import main

main()
