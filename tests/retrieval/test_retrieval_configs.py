import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from adir_exp.cli.config import CONF_DIR
from adir_exp.retrieval.encoders import EfficientNetLite0Encoder, EncoderWeightsError
from adir_exp.retrieval.query import LeakageGuard, Retriever


@pytest.fixture
def compose_retrieval():
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base=None):
        yield lambda *overrides: compose(overrides=list(overrides)).retrieval


def test_knn_defaults_and_overrides(compose_retrieval):
    cfg = compose_retrieval("+retrieval=knn")
    assert cfg.k == 20 and cfg.leakage_guard.threshold == 0.95 and cfg.leakage_guard.enabled
    assert cfg.encoder._target_.endswith("EfficientNetLite0Encoder")
    cfg = compose_retrieval("+retrieval=knn", "retrieval.k=50", "retrieval/encoder=open_clip")
    assert cfg.k == 50 and cfg.encoder.model_name == "ViT-L-14"


def test_every_node_is_instantiable(compose_retrieval, photo_index, effnet_128):
    assert not compose_retrieval("+retrieval=none")  # nothing to build: retrieval methods are refused
    index = f"retrieval.index_dir={photo_index / 'index'}"
    cfg = compose_retrieval("+retrieval=knn", index, "retrieval.k=4", "retrieval.encoder.image_size=128")
    retriever = instantiate(cfg)
    assert isinstance(retriever, Retriever) and isinstance(retriever.encoder, EfficientNetLite0Encoder)
    assert retriever.k == 4 and retriever.leakage_guard == LeakageGuard(True, 0.95)
    assert retriever.encoder.name == effnet_128.name


def test_open_clip_config_without_weights_fails_with_directions(compose_retrieval, tmp_path, monkeypatch):
    monkeypatch.setenv("ADIR_WEIGHTS", str(tmp_path))
    cfg = compose_retrieval("+retrieval=knn", "retrieval/encoder=open_clip")
    with pytest.raises(Exception) as error:  # hydra wraps the constructor's error
        instantiate(cfg.encoder)
    assert isinstance(error.value, EncoderWeightsError) or isinstance(error.value.__cause__, EncoderWeightsError)
    assert "ViT-L-14.pt" in str(error.value)
    assert OmegaConf.select(cfg, "encoder.checkpoint") is None
