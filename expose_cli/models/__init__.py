"""The four ExPose models (body, hand, face, full), their configs, inputs and checkpoints."""

from expose_cli.models.checkpoint import build_predictor, load_model, load_net, save_checkpoint
from expose_cli.models.config import ModelConfig, load_config, preset, small_config
from expose_cli.models.expose import ExPoseNet, Prediction, Predictor
from expose_cli.models.inputs import ModelInput, PersonCrop, collate, crop_person

__all__ = [
    "ExPoseNet", "ModelConfig", "ModelInput", "PersonCrop", "Prediction", "Predictor", "build_predictor",
    "collate", "crop_person", "load_config", "load_model", "load_net", "preset", "save_checkpoint", "small_config",
]
