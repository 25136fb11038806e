"""The ADIOS campaign archive (ACA) format: ``build`` writes it, ``read`` reads it."""
