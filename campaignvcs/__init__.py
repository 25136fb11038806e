"""campaignvcs: an HPC data campaign as a versioned git repository (command ``camp``)."""

__version__ = "0.1.0"
