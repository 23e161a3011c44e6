"""The device follows the model: every path that feeds a network sends its inputs to the device of
the network's weights, whatever moved them there.

A CPU build has no second real device, so the networks go to PyTorch's ``meta`` device (tensors
with shapes and no data). Hooks check that the model's input batch and the features reaching the
first head are on the weights' device; the head's hook then stops the run with :class:`Reached`
(a ``BaseException``, so no ``except Exception`` on the way can swallow it). A path that sends a
batch to a remembered device instead (the old ``Predictor.device`` field, set once to the CPU)
raises :class:`WrongDevice`, or fails inside the network on mixed devices.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from expose_cli.io.paths import DataTree
from expose_cli.models import build_predictor, crop_person
from expose_cli.models.inputs import ModelInput
from expose_cli.testing.checkpoints import random_net


class Reached(BaseException):
    """The first head was reached with every input on the weights' device."""


class WrongDevice(BaseException):
    """An input reached a module on another device than its weights'."""


def _tensors(args) -> list[torch.Tensor]:
    out = []
    for a in args:
        if isinstance(a, ModelInput):
            out += [getattr(a, f.name) for f in dataclasses.fields(a) if getattr(a, f.name) is not None]
        elif torch.is_tensor(a):
            out.append(a)
    return out


def guard(model) -> None:
    """Hooks on an ExPoseModel: its inputs and its first head's inputs must be where its weights are."""

    def check(module, args):
        device = next(module.parameters()).device
        wrong = {str(t.device) for t in _tensors(args) if t.device != device}
        if wrong:
            raise WrongDevice(f"{type(module).__name__} has its weights on {device}, got inputs on {wrong}")

    def stop(module, args):
        check(module, args)
        raise Reached

    model.register_forward_pre_hook(check)
    model.net.head.register_forward_pre_hook(stop)


@pytest.fixture(scope="module")
def freihand_tree(standin_tree, tmp_path_factory):
    """The stand-in tree plus a preprocessed FreiHAND test file of 3 samples."""
    from expose_cli.cli.app import main
    from expose_cli.testing.raw_datasets import write_freihand

    data = tmp_path_factory.mktemp("devices")
    for entry in standin_tree.iterdir():
        (data / entry.name).symlink_to(entry)
    write_freihand(data / "datasets" / "FreiHand", unique=3, eval_samples=3)
    assert main(["--data-dir", str(data), "-q", "preprocess", "freihand", "--split", "test"]) == 0
    return data


def hand_model(tree: DataTree):
    return build_predictor(random_net("hand", small=True), tree).model


def test_training_validation_feeds_the_model_on_its_device(freihand_tree):
    """`expose train`'s validation wraps the training model, already on its device (a GPU in a real
    run), in a Predictor: its batches must go there, not to the CPU."""
    from expose_cli.training.validation import benchmark_validator

    tree = DataTree(freihand_tree)
    validate = benchmark_validator("freihand", None, tree, limit=2)
    model = hand_model(tree).eval()
    guard(model)
    model.to("meta")
    with pytest.raises(Reached):
        validate(model)


def test_eval_follows_a_model_moved_after_its_fused_backbones_were_made(freihand_tree):
    """`expose eval`'s loop (fused backbones): the model runs on the CPU once, is moved, runs again."""
    from expose_cli.data.hdf5 import HDF5Reader
    from expose_cli.evaluation import runner
    from expose_cli.models.expose import Predictor

    tree = DataTree(freihand_tree)
    predictor = Predictor(hand_model(tree))
    reader = HDF5Reader(tree.preprocessed_file("freihand", "test"))
    first = runner.predict("freihand", reader, predictor, batch_size=2, limit=2)
    assert first["vertices"].shape == (2, 778, 3)  # on the CPU it runs through
    guard(predictor.model)
    predictor.model.to("meta")
    assert predictor.device.type == "meta"
    with pytest.raises(Reached):
        runner.predict("freihand", reader, predictor, batch_size=2, limit=2)
    # A CPU convolution given meta input returns meta output, so the fused copy is checked itself.
    assert next(predictor.backbone("backbone").parameters()).device.type == "meta"


def test_infer_batches_go_to_the_weights_device_with_their_full_images(standin_tree):
    """`expose infer`'s forward on the full model: crops and full images on the weights' device."""
    from expose_cli.inference.batching import forward

    predictor = build_predictor(random_net("expose", small=True), DataTree(standin_tree))
    img = (np.random.default_rng(0).random((120, 160, 3)) * 255).astype(np.uint8)
    crops = [crop_person(img, box, img_res=predictor.img_res, keep_full_image=True)
             for box in ([10, 10, 60, 100], [70, 5, 50, 110])]
    guard(predictor.model)
    predictor.model.to("meta")
    with pytest.raises(Reached):
        forward(predictor, crops)


def test_a_training_step_follows_the_model(standin_tree, tmp_path):
    """The loop moves each batch to the model's device, read from the weights at every step."""
    from expose_cli.training.config import run_preset
    from expose_cli.training.loop import Trainer

    cfg = run_preset("hand", small=True)
    cfg.train.workers = 0
    model = hand_model(DataTree(standin_tree))
    trainer = Trainer(cfg, model, [], None, None, tmp_path)
    guard(trainer.model)
    trainer.model.to("meta")
    batch = {"img": torch.zeros(2, 3, 64, 64), "crop_transform": torch.eye(3)[:2].expand(2, 2, 3),
             "scale": torch.full((2, 2), 64.0)}
    with pytest.raises(Reached):
        trainer.step(batch)


def test_training_places_its_process_on_a_torch_device(monkeypatch):
    """`expose train` carries a ``torch.device`` as infer and eval do; a bare ``cuda`` is the first
    GPU, an index is kept (nothing is allocated: no GPU needed)."""
    from expose_cli.training import distributed as D

    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert D.init(torch.device("cpu")).device == torch.device("cpu")
    assert D.init(torch.device("cuda")).device == torch.device("cuda", 0)
    assert D.init(torch.device("cuda", 1)).device == torch.device("cuda", 1)
    assert isinstance(D.init().device, torch.device) and D.DistInfo().device == torch.device("cpu")
