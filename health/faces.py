"""The adapter to face_recognition (dlib) and to AES-GCM: bytes in, encodings out.

It knows no database and no request. :func:`encode` turns an uploaded photo into the one
128-number encoding of the one face in it; the image never leaves this function. The photo is
decoded with Pillow in JPEG draft mode (the decoder itself scales down by 1/2, 1/4 or 1/8) and
resized to at most ``max_side`` pixels before HOG detection without upsampling: on a
2-megapixel photo HOG takes seconds, at 640 px a few tens of milliseconds.

:class:`FaceCipher` encrypts an encoding with AES-GCM under the ``FACE_KEY``; the associated
data binds each ciphertext to its owner and its use, so one citizen's template cannot be passed
off as another's.

face_recognition does no liveness detection: a printed photo of the right face matches.
"""

import base64
import io
import os
import secrets
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from PIL import Image, ImageOps, UnidentifiedImageError

ENCODING_SIZE = 128
_NONCE_BYTES = 12
# Pillow refuses to decode more pixels than this (a "decompression bomb" in a small file).
MAX_PIXELS = 40_000_000


class FaceImageError(Exception):
    """The upload cannot give one encoding; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # "not_an_image", "no_face" or "several_faces"


class FaceKeyError(Exception):
    """A ciphertext does not open with this key (another key, or tampered with)."""


@dataclass(frozen=True)
class Probe:
    """What a photo gives: the face's encoding and the size it was analysed at."""

    encoding: np.ndarray
    analysed_size: tuple[int, int]


def _library() -> Any:
    """face_recognition, imported on first use (it loads dlib's models: ~0.5 s)."""
    with warnings.catch_warnings():
        # face_recognition_models imports pkg_resources (hence setuptools<81), which warns.
        warnings.simplefilter("ignore", UserWarning)
        import face_recognition

    return face_recognition


def decode(data: bytes, max_side: int) -> np.ndarray:
    """The photo as an RGB array at most ``max_side`` pixels on its longer side."""
    try:
        opened = Image.open(io.BytesIO(data))
        if opened.width * opened.height > MAX_PIXELS:
            raise FaceImageError("not_an_image")
        opened.draft("RGB", (max_side, max_side))  # JPEG: decode at 1/2, 1/4, 1/8 scale
        image = ImageOps.exif_transpose(opened).convert("RGB")  # a phone's rotation flag
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        raise FaceImageError("not_an_image") from None
    if max(image.size) > max_side:
        image.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
    return np.asarray(image)


def encode(data: bytes, max_side: int = 640) -> Probe:
    """The encoding of the single face in the photo; :class:`FaceImageError` otherwise."""
    pixels = decode(data, max_side)
    library = _library()
    boxes = library.face_locations(pixels, number_of_times_to_upsample=0, model="hog")
    if not boxes:
        raise FaceImageError("no_face")
    if len(boxes) > 1:
        raise FaceImageError("several_faces")
    (encoding,) = library.face_encodings(pixels, known_face_locations=boxes)
    return Probe(np.asarray(encoding, dtype=np.float64), (pixels.shape[1], pixels.shape[0]))


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance of two encodings (face_recognition's measure: < 0.6 is one person)."""
    return float(np.linalg.norm(a - b))


class FaceCipher:
    """AES-256-GCM over encodings; a random 96-bit nonce is stored before each ciphertext."""

    def __init__(self, key: bytes) -> None:
        if len(key) != 32:
            raise ValueError("FACE_KEY must be 32 bytes (base64-encoded)")
        self._aead = AESGCM(key)

    def seal(self, encoding: np.ndarray, context: str) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        plain = np.asarray(encoding, dtype="<f8").tobytes()
        return nonce + self._aead.encrypt(nonce, plain, context.encode())

    def open(self, sealed: bytes, context: str) -> np.ndarray:
        nonce, body = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        try:
            plain = self._aead.decrypt(nonce, body, context.encode())
        except InvalidTag:
            raise FaceKeyError("the face template does not open with FACE_KEY") from None
        return np.frombuffer(plain, dtype="<f8").copy()


def parse_key(value: str) -> bytes:
    """``FACE_KEY``: 32 bytes, base64 (standard or URL-safe alphabet)."""
    padded = value.strip() + "=" * (-len(value.strip()) % 4)
    try:
        key = base64.urlsafe_b64decode(padded.replace("+", "-").replace("/", "_"))
    except ValueError as exc:
        raise ValueError("FACE_KEY is not base64") from exc
    if len(key) != 32:
        raise ValueError("FACE_KEY must decode to 32 bytes")
    return key


def development_key(path: Path) -> bytes:
    """A key kept in ``path`` (created on first use, readable by the owner only).

    For development only: configuration refuses to start production without ``FACE_KEY``.
    """
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        encoded = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
        try:
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process wrote it first: use theirs
            return parse_key(path.read_text())
        with os.fdopen(descriptor, "w") as file:
            file.write(encoded + "\n")
    return parse_key(path.read_text())
