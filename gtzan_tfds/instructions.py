"""What users are told about data they provide: where to get GTZAN, where to put it, and what
`tfds build gtzan_tfds --imports gtzan_tfds` leaves for them to build."""

from gtzan_tfds.folder_data import FOLDER_LAYOUT
from gtzan_tfds.manual_data import EXPECTED_LAYOUT

HOMEPAGE = "http://marsyas.info/downloads/datasets.html"

MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
`gtzan` and `fault_filtered` read a GTZAN download you provide (it is not redistributed with
this project): `genres.tar.gz` (1.2 GB) from
  {HOMEPAGE} (or a mirror),
or the Kaggle copy ("GTZAN Dataset - Music Genre Classification", archive.zip), packed or
unpacked, in a directory given as the manual dir:

  tfds build gtzan_tfds --imports gtzan_tfds --config gtzan --manual_dir ~/gtzan

{EXPECTED_LAYOUT}

`folder` reads your own music:  tfds build gtzan_tfds --imports gtzan_tfds --config folder --manual_dir ~/music
{FOLDER_LAYOUT}
In Python: tfds.load("gtzan_tfds/gtzan", download_and_prepare_kwargs={{"download_config":
tfds.download.DownloadConfig(manual_dir="~/gtzan")}}). The default manual dir is
<data_dir>/downloads/manual."""

NEXT_STEPS = f"""\
Built the gtzan_tfds configs that need no download. `gtzan` and `fault_filtered` (GTZAN) and \
`folder` (your own labelled music) read files you provide and are built when named:
  tfds build gtzan_tfds --imports gtzan_tfds --config gtzan --manual_dir ~/gtzan
with GTZAN's genres.tar.gz from {HOMEPAGE} or Kaggle's "GTZAN Dataset - Music Genre \
Classification" (archive.zip) in ~/gtzan, packed or unpacked. Without a download, that command \
prints the layouts expected."""
