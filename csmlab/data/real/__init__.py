"""Readers for the real datasets; each returns the sample dict of ``csmlab.data.sample``.

- ``csmlab.data.real.cub.CubDataset``: CUB-200-2011 with CMR's masks and SfM cameras
- ``csmlab.data.real.pascal3d.Pascal3DDataset``: PASCAL3D+ car and aeroplane
- ``csmlab.data.real.synface.SynfaceDataset``: Unsup3D's synthetic faces
- ``csmlab.data.real.celeba.CelebaDataset``: CelebA faces with Unsup3D's crop (no depth)
- ``csmlab.data.real.spair``: SPair-71k images (``SpairImages``) and pairs (``SpairPairs``)
- ``csmlab.data.real.keypointnet.load_keypointnet``: KeypointNet's annotated clouds
- ``csmlab.data.real.pf_pascal.PfPascalPairs``: PF-PASCAL pairs with keypoints
- ``csmlab.data.real.pix3d.Pix3dDataset``: Pix3D images, masks, keypoints, models and poses
- ``csmlab.data.real.acsm``: ACSM's rigged templates and quadruped annotations

Import the module you need; this package imports nothing itself so that the
download scripts start fast.
"""
