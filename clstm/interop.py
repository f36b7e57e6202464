"""Interchange with other frameworks: torch.nn.LSTM modules and state_dicts,
Keras LSTM weights, ONNX (clstm.onnx). Interchange is a mixin of clstm.LSTM."""
from __future__ import annotations

import os
from typing import Any, List, Optional, Union

import numpy as np

from clstm.checks import to_numpy

__all__ = ["Interchange", "unit_suffixes"]


def unit_suffixes(k: int, N: int) -> tuple[str, ...]:
    """The tensor-name suffixes of layer k's N directions: "_l{k}", then
    "_l{k}_reverse" (ONNX's and Keras's per-direction weights map onto them)."""
    return ("_l%d" % k, "_l%d_reverse" % k)[:N]


def _config_from_state_dict(sd):
    """LSTM sizes read off torch.nn.LSTM state_dict shapes."""
    if "weight_ih_l0" not in sd or "weight_hh_l0" not in sd:
        raise KeyError("state_dict: expected torch.nn.LSTM keys weight_ih_l0 and weight_hh_l0, "
                       "got %s" % sorted(sd)[:8])
    w_ih = to_numpy(sd["weight_ih_l0"])
    if w_ih.ndim != 2 or w_ih.shape[0] % 4:
        raise ValueError("state_dict['weight_ih_l0']: expected shape (4H, D), got %s"
                         % (w_ih.shape,))
    layers = 1
    while "weight_ih_l%d" % layers in sd:
        layers += 1
    proj = to_numpy(sd["weight_hr_l0"]).shape[0] if "weight_hr_l0" in sd else 0
    return dict(input_size=w_ih.shape[1], hidden_size=w_ih.shape[0] // 4, num_layers=layers,
                bidirectional="weight_ih_l0_reverse" in sd, proj_size=proj)


def _is_keras(obj):
    """Whether obj is a Keras layer or model, or a list of them (duck-typed:
    no import of keras)."""
    if isinstance(obj, (list, tuple)):
        return bool(obj) and all(_is_keras(o) for o in obj)
    return hasattr(obj, "get_weights") and hasattr(obj, "set_weights")


class Interchange:
    """from_torch, to_torch_state_dict, from_keras, to_keras, keras_model,
    from_onnx, to_onnx: for a
    class with named_parameters, state_dict and load_state_dict."""

    @classmethod
    def from_torch(cls, module_or_state_dict, *, dtype=None, batch_first=None, **kwargs):
        """A model with the weights of a torch.nn.LSTM (a module, or its
        state_dict). From a module, every setting is copied (sizes,
        bidirectional, proj_size, dropout, batch_first; bias=False gives zero
        biases); from a state_dict, the sizes are read off the tensor shapes.
        dtype defaults to float64 for float64 weights, else float32."""
        src = module_or_state_dict
        if hasattr(src, "state_dict") and hasattr(src, "hidden_size"):
            sd = dict(src.state_dict())
            cfg = dict(input_size=src.input_size, hidden_size=src.hidden_size,
                       num_layers=src.num_layers, bidirectional=bool(src.bidirectional),
                       proj_size=int(getattr(src, "proj_size", 0)), dropout=float(src.dropout))
            if batch_first is None:
                batch_first = bool(src.batch_first)
        elif hasattr(src, "items"):
            sd = dict(src)
            cfg = _config_from_state_dict(sd)
        else:
            raise TypeError("module_or_state_dict: expected a torch.nn.LSTM or a mapping of "
                            "name -> tensor, got %s" % type(src).__name__)
        arrays = {k: to_numpy(v) for k, v in sd.items()}
        if dtype is None:
            w = arrays.get("weight_ih_l0")
            dtype = np.float64 if w is not None and w.dtype == np.float64 else np.float32
        cfg.update(kwargs)
        if cfg.get("dropout", 0) and cfg.get("num_layers", 1) == 1:
            cfg["dropout"] = 0.0  # torch keeps it, with its warning; it has no effect
        lstm = cls(dtype=dtype, batch_first=bool(batch_first), **cfg)
        for name, view in lstm.named_parameters().items():  # bias=False: zero biases
            if name.startswith("bias_") and name not in arrays:
                arrays[name] = np.zeros(view.shape)
        lstm.load_state_dict(arrays)
        return lstm

    def to_torch_state_dict(self):
        """{name: torch.Tensor} copies, for torch.nn.LSTM(...).load_state_dict."""
        try:
            import torch
        except ImportError:
            raise ImportError("to_torch_state_dict needs PyTorch: pip install torch "
                              "(for the CPU: torch==2.13.0)") from None
        return {k: torch.from_numpy(v) for k, v in self.state_dict().items()}

    @classmethod
    def from_keras(cls, kernel, recurrent_kernel=None, bias=None, *, activation="tanh",
                   recurrent_activation="sigmoid", dtype=None, **kwargs):
        """A model from Keras: either a Keras object (a keras.layers.LSTM, a
        Bidirectional(LSTM), a list of them or a keras.Model; see
        clstm.keras.lstm_from_keras, which reads every setting off the layers),
        or the arrays of one Keras LSTM layer's get_weights(): kernel (D, 4H),
        recurrent_kernel (H, 4H), bias (4H) or None (use_bias=False). Keras
        orders gates i, f, c, o, which is torch's i, f, g, o; its matrices are
        the transposes of torch's, and its one bias becomes bias_ih (bias_hh =
        0). For the arrays: activation must be "tanh"; recurrent_activation
        "sigmoid" (Keras's default) or "hard_sigmoid" (Keras 2's default),
        which Keras 2 and 3 define differently, so it needs gate_alpha: 0.2
        for Keras 2 (tf.keras up to TensorFlow 2.15: clip(0.2 x + 0.5, 0, 1)),
        1/6 for Keras 3 (relu6(x + 3) / 6); the model then has
        gate_activation="hard_sigmoid". Anything else is refused."""
        from clstm.keras import lstm_from_keras
        if _is_keras(kernel):
            if recurrent_kernel is not None or bias is not None:
                raise TypeError("from_keras: recurrent_kernel and bias go with a kernel array, "
                                "not with a Keras layer or model")
            return lstm_from_keras(kernel, dtype=dtype, **kwargs)
        if recurrent_kernel is None:
            raise TypeError("from_keras: expected recurrent_kernel with a kernel array")
        if recurrent_activation == "hard_sigmoid":
            if "gate_alpha" not in kwargs:
                raise ValueError("recurrent_activation='hard_sigmoid': Keras 2 and Keras 3 "
                                 "define it differently; pass gate_alpha=0.2 (Keras 2, tf.keras "
                                 "up to TensorFlow 2.15) or gate_alpha=1/6 (Keras 3)")
            kwargs["gate_activation"] = "hard_sigmoid"
        elif recurrent_activation != "sigmoid":
            raise ValueError("recurrent_activation: clstm computes sigmoid or hard sigmoid "
                             "gates; a Keras LSTM with recurrent_activation=%r gives different "
                             "results and cannot be imported" % (recurrent_activation,))
        if activation != "tanh":
            raise ValueError("activation: clstm computes tanh; a Keras LSTM with "
                             "activation=%r cannot be imported" % (activation,))
        k = to_numpy(kernel)
        rk = to_numpy(recurrent_kernel)
        if k.ndim != 2 or k.shape[1] % 4 or k.shape[1] == 0:
            raise ValueError("kernel: expected shape (D, 4H), got %s" % (k.shape,))
        D, H = k.shape[0], k.shape[1] // 4
        if rk.shape != (H, 4 * H):
            raise ValueError("recurrent_kernel: expected shape (%d, %d), got %s"
                             % (H, 4 * H, rk.shape))
        b = np.zeros(4 * H) if bias is None else to_numpy(bias)
        if b.shape != (4 * H,):
            raise ValueError("bias: expected shape (%d,), got %s" % (4 * H, b.shape))
        if dtype is None:
            dtype = np.float64 if k.dtype == np.float64 else np.float32
        lstm = cls(D, H, dtype=dtype, **kwargs)
        lstm.load_state_dict({"weight_ih_l0": k.T, "weight_hh_l0": rk.T, "bias_ih_l0": b,
                              "bias_hh_l0": np.zeros(4 * H)})
        return lstm

    def to_keras(self) -> List[List[np.ndarray]]:
        """This model's weights for Keras 3, one list of arrays per layer in
        set_weights order (see clstm.keras.lstm_to_keras): [kernel,
        recurrent_kernel, bias] for keras.layers.LSTM, six arrays (forward,
        then reverse) for Bidirectional(LSTM). Needs no Keras."""
        from clstm.keras import lstm_to_keras
        return lstm_to_keras(self)

    def keras_model(self, **kwargs: Any) -> Any:
        """A keras.Model computing this model's forward (see
        clstm.keras.keras_model); needs Keras 3."""
        from clstm.keras import keras_model
        return keras_model(self, **kwargs)

    @classmethod
    def from_onnx(cls, model_or_path, **kwargs):
        """A model from the LSTM node(s) of an ONNX model (see clstm.onnx)."""
        from clstm.onnx import lstm_from_onnx
        return lstm_from_onnx(model_or_path, **kwargs)

    def to_onnx(self, path: Optional[Union[str, os.PathLike[str]]] = None,
                **kwargs: Any) -> Any:
        """This model as an onnx.ModelProto, saved atomically to path if given
        (see clstm.onnx). Only a bare LSTM (no encoding, no head) exports so far."""
        from clstm.onnx import lstm_to_onnx
        return lstm_to_onnx(self, path, **kwargs)
