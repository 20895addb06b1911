"""GTZAN's fixed facts, shared by the builder, the pipeline and the models."""

from core.audio import SAMPLE_RATE  # noqa: F401  (re-exported: every stored song's rate)

# The ten genres in the order every GTZAN paper (and TFDS's own `gtzan`) uses:
# the ClassLabel index of a genre is its position here.
GENRES = (
    "blues",
    "classical",
    "country",
    "disco",
    "hiphop",
    "jazz",
    "metal",
    "pop",
    "reggae",
    "rock",
)
NUM_CLASSES = len(GENRES)

SONGS_PER_GENRE = 100  # in a complete GTZAN download
CLIP_SECONDS = 30.0  # nominal clip length (real clips are 29.98-30.66 s)
