"""The declarative U-Net description (models/unet_spec.py): the Spleeter wiring it states, the checkpoint table it
implies, what validate() refuses, and the exact weight folds."""

import dataclasses

import numpy as np
import pytest

from fastsep import ModelError
from fastsep.models import config as configs
from fastsep.models import unet_spec as spec
from tests.support.weights import random_weights


def test_spleeter_wiring_of_4stems():
    net = spec.network_spec(configs.stock("4stems"))
    assert net.n_stems == 4 and net.mask == "sigmoid" and net.in_channels == 2 and net.spatial_multiple == 64
    u = net.unets[1]
    enc = [e.conv for e in u.encoder]
    assert [(c.in_channels, c.out_channels) for c in enc] == [(2, 16), (16, 32), (32, 64), (64, 128), (128, 256),
                                                              (256, 512)]
    assert {(c.kernel, c.stride, c.dilation, c.pad, c.transposed) for c in enc} == {(5, 2, 1, (1, 2), False)}
    assert [e.feeds_next for e in u.encoder] == [True] * 5 + [False]  # the 6th BN + activation are unused
    assert {(e.bn.eps, e.activation) for e in u.encoder} == {(1e-3, "ELU")}
    assert u.decoder_input == 5  # the decoder starts from the raw c6
    dec = [d.deconv for d in u.decoder]
    assert [(c.in_channels, c.out_channels) for c in dec] == [(512, 256), (512, 128), (256, 64), (128, 32), (64, 16),
                                                              (32, 1)]
    assert {(c.kernel, c.stride, c.crop, c.transposed) for c in dec} == {(5, 2, (1, 2), True)}
    assert [d.skip for d in u.decoder] == [4, 3, 2, 1, 0, None]
    f = u.final
    assert (f.in_channels, f.out_channels, f.kernel, f.dilation, f.stride, f.pad) == (1, 2, 4, 2, 1, (3, 3))
    # checkpoint names: stem 1's layers follow stem 0's 7 convs, 6 transposed convs and 12 batch norms
    assert (enc[0].name, dec[0].name, f.name, u.encoder[0].bn.name, u.decoder[0].bn.name) == (
        "conv2d_7", "conv2d_transpose_6", "conv2d_13", "batch_normalization_12", "batch_normalization_18")


def test_mask_head_and_activations_follow_the_config(tiny_config):
    assert spec.network_spec(configs.stock("5stems")).mask == "softmax"
    u = spec.network_spec(configs.stock("2stems")).unets[0]
    assert {e.activation for e in u.encoder} == {"LeakyReLU"} and {d.activation for d in u.decoder} == {"ReLU"}


@pytest.mark.parametrize("name,count", [("2stems", 148), ("4stems-16kHz", 296), ("5stems", 370)])
def test_variables_are_the_checkpoint_table(name, count):
    """74 variables per U-Net (12 convs x 2, 12 BNs x 4, final conv x 2), named as Keras created them; the real
    2stems checkpoint's own table is checked in test_models.py."""
    shapes = spec.variable_shapes(spec.network_spec(configs.stock(name)))
    assert len(shapes) == count
    assert shapes["conv2d/kernel"] == (5, 5, 2, 16) and shapes["conv2d_transpose/kernel"] == (5, 5, 256, 512)
    assert shapes["conv2d_6/kernel"] == (4, 4, 1, 2) and shapes["batch_normalization_11/gamma"] == (1,)


def test_variables_of_a_custom_config(tiny_config):
    shapes = spec.variable_shapes(spec.network_spec(tiny_config(stems=3, filters=(4, 4, 6, 6, 8, 8))))
    assert len(shapes) == 3 * 74
    assert shapes["conv2d_7/kernel"] == (5, 5, 2, 4) and shapes["conv2d_transpose_6/kernel"] == (5, 5, 8, 8)


def _replace_layer(net, **changes):
    u = net.unets[0]
    e = dataclasses.replace(u.encoder[2], conv=dataclasses.replace(u.encoder[2].conv, **changes))
    u = dataclasses.replace(u, encoder=u.encoder[:2] + (e,) + u.encoder[3:])
    return dataclasses.replace(net, unets=(u,) + net.unets[1:])


@pytest.mark.parametrize("change,message", [
    (dict(pad=(2, 1)), "not TF 'same'"),
    (dict(in_channels=33), "channels do not chain"),
])
def test_validate_refuses_a_broken_layer(change, message):
    net = spec.network_spec(configs.stock("2stems"))
    with pytest.raises(ModelError, match=message):
        spec.validate(_replace_layer(net, **change))


def test_validate_refuses_a_broken_net():
    net = spec.network_spec(configs.stock("2stems"))
    with pytest.raises(ModelError, match="mask"):
        spec.validate(dataclasses.replace(net, mask="tanh"))
    u = net.unets[0]
    with pytest.raises(ModelError, match="skip"):
        d = dataclasses.replace(u.decoder[0], skip=9)
        spec.validate(dataclasses.replace(net, unets=(dataclasses.replace(u, decoder=(d,) + u.decoder[1:]),) * 2))


def _decoder_stage(a, scale, shift, kernel_rows):
    """The next layer's input contribution of u = a * scale + shift: kernel rows (in, ...) times u, summed."""
    return np.einsum("c,c...->...", a * scale + shift, kernel_rows)


def test_decoder_scale_folds_into_the_next_layer(tiny_config):
    cfg = tiny_config(stems=2)
    w = random_weights(cfg, seed=4)
    u = spec.network_spec(cfg).unets[1]
    folded = spec.fold(u, w, np.float64)
    assert all(f.scale is None for f in folded.decoder)  # every decoder scale folded forward
    assert all(f.scale is not None for f in folded.encoder[:5]) and folded.encoder[5].scale is None
    a = np.random.default_rng(0).standard_normal(u.decoder[1].bn.channels)  # an activation value per channel
    scale, shift = spec.bn_affine(u.decoder[1].bn, w)
    rows = spec.kernel(u.decoder[2].deconv, w, np.float64)[-len(scale):]  # the up-channels of the concat
    folded_rows = folded.decoder[2].kernel[-len(scale):]
    np.testing.assert_allclose(_decoder_stage(a, 1.0, folded.decoder[1].shift, folded_rows),
                               _decoder_stage(a, scale, shift, rows), rtol=1e-12, atol=1e-12)
    skip_rows = slice(0, -len(scale))  # the skip's rows are untouched
    np.testing.assert_array_equal(folded.decoder[2].kernel[skip_rows],
                                  spec.kernel(u.decoder[2].deconv, w, np.float64)[skip_rows])


def test_zero_scale_is_not_folded(tiny_config):
    cfg = tiny_config(stems=1)
    w = random_weights(cfg, seed=4)
    bn = spec.network_spec(cfg).unets[0].decoder[3].bn
    w[f"{bn.name}/gamma"][1] = 0.0
    folded = spec.fold(spec.network_spec(cfg).unets[0], w, np.float64)
    assert folded.decoder[3].scale is not None and folded.decoder[2].scale is None
    np.testing.assert_array_equal(folded.decoder[4].kernel, spec.kernel(spec.network_spec(cfg).unets[0].decoder[4]
                                                                        .deconv, w, np.float64))
