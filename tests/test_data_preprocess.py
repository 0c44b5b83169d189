"""Preprocessing parity with each model's own processor, configured as that model's.

RAD-DINO: transformers BitImageProcessor (shortest edge 518, centre crop 518, mean .5307 std .2583).
CheXagent (XraySigLIP): transformers SiglipImageProcessor (512 x 512 direct, mean/std .5).
BiomedCLIP: open_clip's eval transform (shortest side 224, centre crop, OpenAI CLIP mean/std).
Both transformers back ends (torchvision and PIL) are checked. Tolerance: mean absolute difference after
normalisation within one 8-bit level, 1 / (255 * std).
"""
import numpy as np
import open_clip
import pytest
from PIL import Image
from pydicom.data import get_testdata_file
from transformers import BitImageProcessor, SiglipImageProcessor
from transformers.models.bit.image_processing_pil_bit import BitImageProcessorPil
from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

from jaxprobe.data.images import read_image
from jaxprobe.data.transforms import geometry, preprocess, preprocess_batch, preprocess_mask, preprocess_mask_batch
from jaxprobe.data.synth import chest_phantom
from jaxprobe.encoders.spec import EncoderSpec

RAD_DINO = EncoderSpec("dinov2", 518, 14, (0.5307,) * 3, (0.2583,) * 3, "shortest_edge_center_crop", 768, 768)
CHEXAGENT = EncoderSpec("siglip", 512, 16, (0.5,) * 3, (0.5,) * 3, "direct", 1024, 1024)
BIOMEDCLIP = EncoderSpec("timm_vit", 224, 16, (0.48145466, 0.4578275, 0.40821073),
                         (0.26862954, 0.26130258, 0.27577711), "shortest_edge_center_crop", 512, 768)


def hf(processor_class, spec):
    if spec is CHEXAGENT:
        return processor_class(size={"height": 512, "width": 512}, image_mean=list(spec.mean), image_std=list(spec.std))
    return processor_class(size={"shortest_edge": spec.input_size},
                           crop_size={"height": spec.input_size, "width": spec.input_size},
                           image_mean=list(spec.mean), image_std=list(spec.std))


def reference(name, spec, image_u8):
    pil = Image.fromarray(image_u8).convert("RGB")
    if name == "open_clip":
        transform = open_clip.image_transform(spec.input_size, is_train=False, mean=spec.mean, std=spec.std)
        return transform(pil).numpy().transpose(1, 2, 0)
    cls = {("torchvision", "dinov2"): BitImageProcessor, ("pil", "dinov2"): BitImageProcessorPil,
           ("torchvision", "siglip"): SiglipImageProcessor, ("pil", "siglip"): SiglipImageProcessorPil}[name, spec.family]
    return np.asarray(hf(cls, spec)(pil, return_tensors="np")["pixel_values"][0]).transpose(1, 2, 0)


CASES = [("torchvision", RAD_DINO), ("pil", RAD_DINO), ("torchvision", CHEXAGENT), ("pil", CHEXAGENT),
         ("open_clip", BIOMEDCLIP)]


@pytest.fixture(scope="module")
def real_film():
    return read_image(get_testdata_file("RG1_UNCI.dcm"))


@pytest.fixture(scope="module")
def phantom_film():
    # 301 x 256: odd crop excess for both shortest-edge encoders, so the crop rounding rule is exercised
    image = chest_phantom(np.random.default_rng(5), 301, 256, target_ctr=0.55, pneumothorax=True).image
    return np.rint(image * 255).astype(np.uint8)


@pytest.mark.parametrize("backend, spec", CASES, ids=[f"{b}-{s.family}" for b, s in CASES])
@pytest.mark.parametrize("film", ["real_film", "phantom_film"])
def test_parity_with_model_processors(backend, spec, film, request):
    image = request.getfixturevalue(film)
    ours = preprocess(image, spec)
    ref = reference(backend, spec, image)
    assert ours.shape == ref.shape == (spec.input_size, spec.input_size, 3) and ours.dtype == np.float32
    one_level = 1.0 / (255.0 * max(spec.std))
    assert np.abs(ours - ref).mean() <= one_level


def test_geometry_follows_the_processors_size_rule():
    assert geometry(1955, 1841, RAD_DINO) == (550, 518, 16, 0)  # int(518 * 1955 / 1841) = 550
    assert geometry(301, 256, BIOMEDCLIP)[:2] == (263, 224)
    assert geometry(301, 256, BIOMEDCLIP)[2] == 20  # torchvision: round(39 / 2) = 20 (half to even)
    assert geometry(301, 256, RAD_DINO)[2] == 45  # transformers: 91 // 2
    assert geometry(100, 400, CHEXAGENT) == (512, 512, 0, 0)


@pytest.mark.parametrize("spec", [RAD_DINO, CHEXAGENT, BIOMEDCLIP], ids=lambda s: s.family)
def test_mask_follows_the_image_geometry(spec):
    height, width = 300, 260
    r0, r1, c0, c1 = 60, 200, 40, 150
    mask = np.zeros((height, width), bool)
    mask[r0:r1, c0:c1] = True
    out = preprocess_mask(mask, spec)
    assert out.dtype == bool and out.shape == (spec.input_size, spec.input_size)
    new_h, new_w, top, left = geometry(height, width, spec)
    rows, cols = np.flatnonzero(out.any(axis=1)), np.flatnonzero(out.any(axis=0))
    sy, sx = new_h / height, new_w / width
    assert abs(rows[0] - (r0 * sy - top)) <= 1 and abs(rows[-1] + 1 - (r1 * sy - top)) <= 1
    assert abs(cols[0] - (c0 * sx - left)) <= 1 and abs(cols[-1] + 1 - (c1 * sx - left)) <= 1


def test_batches_and_bad_input(phantom_film):
    batch = preprocess_batch([phantom_film, phantom_film[:200]], BIOMEDCLIP)
    assert batch.shape == (2, 224, 224, 3)
    np.testing.assert_array_equal(batch[0], preprocess(phantom_film, BIOMEDCLIP))
    masks = preprocess_mask_batch([phantom_film > 128, phantom_film[:200] > 128], BIOMEDCLIP)
    assert masks.shape == (2, 224, 224) and masks.dtype == bool
    with pytest.raises(ValueError, match="uint8"):
        preprocess(phantom_film.astype(np.float32), RAD_DINO)
    with pytest.raises(ValueError, match="2-D"):
        preprocess(np.zeros((4, 4, 3), np.uint8), RAD_DINO)
