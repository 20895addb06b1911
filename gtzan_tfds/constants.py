"""GTZAN's fixed facts, shared by the builder, the pipeline and the models."""

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

SAMPLE_RATE = 22_050  # Hz, every GTZAN clip
CLIP_SECONDS = 30.0  # nominal clip length (real clips are 29.98-30.66 s)
