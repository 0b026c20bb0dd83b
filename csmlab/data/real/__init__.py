"""Readers for the real datasets; each returns the sample dict of ``csmlab.data.sample``.

- ``csmlab.data.real.cub.CubDataset``: CUB-200-2011 with CMR's masks and SfM cameras
- ``csmlab.data.real.pascal3d.Pascal3DDataset``: PASCAL3D+ car and aeroplane
- ``csmlab.data.real.synface.SynfaceDataset``: Unsup3D's synthetic faces

Import the module you need; this package imports nothing itself so that the
download scripts start fast.
"""
