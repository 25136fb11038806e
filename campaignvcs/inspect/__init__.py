"""What is inside a dataset, from its recorded metadata alone (``camp info``, ``camp search``).

``bp`` asks the installed ADIOS2 (in a child process) what a BP dataset's embedded
metadata holds; ``hdf5`` reads the metadata-only HDF5 copy with h5py; ``describe`` turns a
recorded dataset (a repository manifest or an archive's rows) into :class:`Contents`.
"""
