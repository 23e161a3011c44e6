"""Fitting SMPL-X to 2D or 3D keypoints by staged L-BFGS (SMPLify-X), started from ExPose's estimate.

``config.py`` (stages and weights; MMHuman3D's ``configs/smplify/smplifyx.py`` as the compatible
preset), ``losses.py`` (pure loss terms), ``joint_limits.py`` (the hand-written joint-angle prior),
``parts.py`` (per-part keypoint weights), ``objective.py`` (parameters -> keypoints -> terms),
``optimize.py`` (the staged L-BFGS loop, batched over persons and frames), ``inputs.py`` (keypoint
files and starts), ``run.py`` (one `expose fit` run: inputs -> fits -> files).
"""
