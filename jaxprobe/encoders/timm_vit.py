"""timm ViT as wrapped by open_clip (BiomedCLIP's image tower): CLS, positions with a CLS slot, exact GELU.

Matches ``open_clip.timm_model.TimmModel(..., pool="", proj="linear", proj_bias=False)``: patches =
``trunk.forward_features(x)[:, 1:]`` (after the final norm, before projection), global = the final-normed CLS
token times ``head.proj`` (bias-free), i.e. ``encode_image(normalize=False)``. At a non-native size the patch
part of the position table is resampled as timm's ``resample_abs_pos_embed`` does (bicubic, antialias=True).
The computation is open_clip's native tower without its pre-norm (``clip.ClipEncoder``); only the random
initialisation of the class token differs (timm's 1e-6).
"""
from __future__ import annotations

from .clip import ClipEncoder


class TimmViTEncoder(ClipEncoder):
    cls_init_std = 1e-6
