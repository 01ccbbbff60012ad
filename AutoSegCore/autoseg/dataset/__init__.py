"""Raw datasets (``nnUNet_raw``): the dataset model (``dataset_json``, ``cases``, ``splits``) and, in
subpackages, the integrity check (``integrity``), converters from other layouts (``convert``) and the
export of annotated cases into a dataset (``export``)."""
