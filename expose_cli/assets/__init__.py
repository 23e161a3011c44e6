"""Files on disk: downloads, body-model import, the doctor's inventory."""
