"""Image backbones: HRNet-W48 (ExPose body) and ResNet-18 (hands, face)."""
