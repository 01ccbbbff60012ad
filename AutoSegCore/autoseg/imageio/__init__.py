"""Image reading and writing, in nnU-Net's conventions (channel-first arrays + geometry properties)."""

from autoseg.imageio.base import ImageProperties, ImageReaderWriter
from autoseg.imageio.registry import (
    reader_writer_class_by_name,
    reader_writer_class_for_ending,
    reader_writer_for_dataset,
    reader_writer_for_dataset_folder,
    reader_writer_for_file,
)

__all__ = [
    "ImageProperties",
    "ImageReaderWriter",
    "reader_writer_class_by_name",
    "reader_writer_class_for_ending",
    "reader_writer_for_dataset",
    "reader_writer_for_dataset_folder",
    "reader_writer_for_file",
]
