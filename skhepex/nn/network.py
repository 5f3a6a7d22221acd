"""The sequential network shared by every estimator of skhepex.

A :class:`Network` is a list of layers (dense, convolution, pooling, flatten,
activation) with forward and backward passes, weight masks, function-preserving
neuron permutations and its decomposition into *linear stages* (the matrices
that encrypted inference multiplies).
"""

import numpy as np

from .activations import Activation
from .layers import AvgPool2D, Conv2D, Dense, Flatten


class LinearStage:
    """A weight layer together with the linear layers that follow it.

    Under HE a network is a chain of linear maps, each followed by an optional
    polynomial activation. A stage is that linear map as one matrix:
    ``y = matrix @ x + bias`` on channel-major flattened samples.

    Attributes
    ----------
    weight_index : int
        Index of the stage's weight layer among the network's weight layers.
    layers : list
        The linear layers of the stage (a ``Flatten``, the weight layer, then
        any pooling).
    weight_layer : Dense or Conv2D
        The stage's weight layer.
    activation : Activation or None
        The activation applied after the stage (``None`` for the output).
    in_shape, out_shape : tuple
        Per-sample shapes before and after the stage.
    """

    def __init__(self, weight_index, layers, activation, in_shape, out_shape):
        self.weight_index = weight_index
        self.layers = layers
        self.weight_layer = next(layer for layer in layers if layer.has_weights)
        self.activation = activation
        self.in_shape = tuple(in_shape)
        self.out_shape = tuple(out_shape)

    @property
    def n_in(self):
        """int : Input dimension of the stage matrix."""
        return int(np.prod(self.in_shape))

    @property
    def n_out(self):
        """int : Output dimension of the stage matrix."""
        return int(np.prod(self.out_shape))

    @property
    def in_unit_size(self):
        """int : Matrix columns per input neuron (channel size for a convolution)."""
        return int(np.prod(self.in_shape[1:])) if len(self.in_shape) == 3 else 1

    @property
    def out_unit_size(self):
        """int : Matrix rows per output neuron (channel size for a convolution)."""
        return int(np.prod(self.out_shape[1:])) if len(self.out_shape) == 3 else 1

    def _apply(self, x):
        x = x.reshape((x.shape[0],) + self.in_shape)
        for layer in self.layers:
            x = layer.forward(x)
        return x.reshape(x.shape[0], -1)

    def bias(self):
        """Stage output on a zero input, shape (n_out,)."""
        return self._apply(np.zeros((1, self.n_in)))[0]

    def matrix(self):
        """The stage's linear map as a dense (n_out, n_in) matrix.

        For a dense stage this is ``W.T``; a convolution (with any pooling that
        follows it) is unrolled by applying it to the identity basis.
        """
        if len(self.layers) == 1 and self.weight_layer.kind == "dense":
            return self.weight_layer.W.T.copy()
        eye = np.eye(self.n_in)
        return (self._apply(eye) - self.bias()).T


class Network:
    """A sequential network of NumPy layers.

    Parameters
    ----------
    layers : list
        Layer objects from :mod:`skhepex.nn.layers` and
        :class:`~skhepex.nn.activations.Activation`.
    input_shape : tuple of int
        Shape of one input sample, ``(n_features,)`` or ``(C, H, W)``.
    """

    def __init__(self, layers, input_shape):
        self.layers = list(layers)
        self.input_shape = tuple(int(s) for s in input_shape)
        self.input_perm = None
        self.output_perm = None

    # ------------------------------------------------------------------ build
    def build(self, rng, gain=1.0):
        """Initialise every weight layer with ``rng`` (Glorot-uniform times ``gain``).

        Biases start at zero. :meth:`calibrate` then adapts the scale of the
        layers feeding polynomial activations to the data.
        """
        for layer in self.layers:
            if layer.has_weights:
                layer.build(rng, gain=gain)
        return self

    def calibrate(self, X, max_samples=1000):
        """Data-dependent initialisation of a freshly built network, in place.

        Layer by layer from the input, every weight layer that feeds an
        activation with an :attr:`~skhepex.nn.Activation.init_std` (the
        ``"square"`` one) is rescaled so that the activation's inputs on
        ``X`` have that standard deviation (the LSUV scheme of Mishkin and
        Matas, 2016, with one factor per layer). The biases must be zero, as
        :meth:`build` leaves them, so the rescaling is exact; the other layers
        and all masks are left alone.

        Parameters
        ----------
        X : ndarray of shape (n_samples, n_features)
            Training inputs, original feature order.
        max_samples : int, default=1000
            At most this many rows of ``X`` (evenly spaced) are used.

        Returns
        -------
        self : Network
            The network, rescaled in place.
        """
        X = np.asarray(X, dtype=np.float64)
        step = max(1, -(-X.shape[0] // max_samples))
        x = X[::step]
        if self.input_perm is not None:
            x = x[:, self.input_perm]
        x = x.reshape((x.shape[0],) + self.input_shape)
        feeding = None
        for layer in self.layers:
            if layer.has_weights:
                feeding = layer
            elif layer.kind == "activation" and layer.init_std is not None and feeding is not None:
                std = float(np.std(x))
                if np.isfinite(std) and std > 1e-12 and not np.any(feeding.b):
                    factor = layer.init_std / std
                    feeding.W *= factor
                    x = x * factor
            x = layer.forward(x)
        return self

    def shapes(self):
        """Per-sample shapes: input, then after each layer."""
        shapes = [self.input_shape]
        for layer in self.layers:
            if layer.kind == "activation":
                shapes.append(shapes[-1])
            else:
                shapes.append(tuple(layer.output_shape(shapes[-1])))
        return shapes

    @property
    def weight_layers(self):
        """list : The dense and convolution layers, in order."""
        return [layer for layer in self.layers if layer.has_weights]

    @property
    def activations(self):
        """list : The activation layers, in order."""
        return [layer for layer in self.layers if layer.kind == "activation"]

    # -------------------------------------------------------------- forward
    def forward(self, x, train=False, upto=None, unpermute=True):
        """Forward pass on samples in the original feature order.

        Parameters
        ----------
        x : ndarray of shape (n_samples, n_features) or (n_samples,) + input_shape
            Input samples, original feature order: :attr:`input_perm` is
            applied here.
        train : bool, default=False
            Cache what :meth:`backward` needs.
        upto : int, default=None
            Stop before layer index ``upto`` (``None``: run every layer).
        unpermute : bool, default=True
            For a full pass, return the outputs in the original order (see
            :meth:`unpermute_outputs`); ``False`` returns them in the packed
            order the last weight layer computes them in.

        Returns
        -------
        out : ndarray
            The outputs (the activations before layer ``upto`` when given).
        """
        if self.input_perm is not None:
            x = x[:, self.input_perm]
        x = x.reshape((x.shape[0],) + self.input_shape)
        layers = self.layers if upto is None else self.layers[:upto]
        for layer in layers:
            x = layer.forward(x, train=train)
        if upto is None and unpermute:
            x = self.unpermute_outputs(x)
        return x

    def unpermute_outputs(self, out):
        """Undo the output permutation: packed output order to original order.

        The one definition of how :attr:`output_perm` is undone; the
        estimators' post-processing (:meth:`skhepex.estimators.NetworkMixin.output_head`)
        and :meth:`forward` both call it.

        Parameters
        ----------
        out : ndarray of shape (n_samples, n_outputs)
            Outputs in the order the last weight layer computes them.

        Returns
        -------
        out : ndarray of shape (n_samples, n_outputs)
            Outputs in the original order (``out`` itself when there is no
            output permutation).
        """
        if self.output_perm is None:
            return out
        return out[:, np.argsort(self.output_perm)]

    def backward(self, grad):
        """Back-propagate the output gradient; fills every layer's gradients."""
        if self.output_perm is not None:
            grad = grad[:, self.output_perm]
        for layer in reversed(self.layers):
            grad = layer.backward(grad)
        return grad

    def params(self):
        """All trainable arrays."""
        return [p for layer in self.layers for p in layer.params()]

    def grads(self):
        """All gradients, matching :meth:`params`."""
        return [g for layer in self.layers for g in layer.grads()]

    def apply_masks(self):
        """Zero every masked weight."""
        for layer in self.weight_layers:
            layer.apply_mask()

    # --------------------------------------------------------------- stages
    def stages(self):
        """Decompose the network into :class:`LinearStage` objects.

        Every weight layer opens a stage; the pooling/flatten layers up to the
        next activation belong to it. Raises if a stage would contain two weight
        layers or if a parameter-free linear layer precedes the first weight
        layer.
        """
        shapes = self.shapes()
        stages, current, pending = [], None, []
        w_index = -1
        for i, layer in enumerate(self.layers):
            if layer.has_weights:
                if current is not None and current["activation"] is None:
                    raise ValueError(
                        "Two weight layers without an activation between them "
                        "cannot be split into HE stages."
                    )
                w_index += 1
                current = {"layers": pending + [layer], "activation": None,
                           "start": i - len(pending), "index": w_index}
                pending = []
                stages.append(current)
            elif layer.kind == "activation":
                if current is None:
                    raise ValueError("An activation precedes the first weight layer.")
                if current["activation"] is not None:
                    raise ValueError("Two consecutive activations are not supported.")
                current["activation"] = layer
                current["end"] = i
            else:
                if layer.kind == "flatten" and (current is None or
                                                current["activation"] is not None):
                    pending.append(layer)  # a reshape: opens the next stage
                    continue
                if current is None:
                    raise ValueError(
                        f"Layer {layer.kind!r} precedes the first weight layer."
                    )
                if current["activation"] is not None:
                    # pooling after an activation: opens no stage; fold it into
                    # the next one is not supported, keep networks HE-friendly.
                    raise ValueError(
                        f"Layer {layer.kind!r} after an activation is not supported; "
                        "put pooling before the activation."
                    )
                current["layers"].append(layer)
        out = []
        for st in stages:
            start = st["start"]
            end = start + len(st["layers"])
            out.append(LinearStage(st["index"], st["layers"], st["activation"],
                                   shapes[start], shapes[end]))
        return out

    def clear_cache(self):
        """Drop the activations cached by training (keeps pickles small)."""
        for layer in self.layers:
            for name in ("_x", "_cols_cache", "_xshape"):
                if hasattr(layer, name):
                    delattr(layer, name)

    # ---------------------------------------------------------- permutation
    def permute_hidden(self, index, perm):
        """Permute the output units of weight layer ``index`` (function-preserving).

        The outputs of weight layer ``index`` (neurons of a dense layer or
        channels of a convolution) are reordered by ``perm``; the inputs of the
        next weight layer are reordered accordingly (a block of columns per
        channel when a convolution feeds a dense layer through ``Flatten``).

        Parameters
        ----------
        index : int
            Weight-layer index; must not be the last weight layer.
        perm : array-like of int
            New order: output unit ``k`` of the permuted layer is old unit
            ``perm[k]``.
        """
        wl = self.weight_layers
        if not 0 <= index < len(wl) - 1:
            raise ValueError(f"Hidden layer index {index} out of range.")
        perm = np.asarray(perm)
        a, b = wl[index], wl[index + 1]
        n_units = a.W.shape[1] if a.kind == "dense" else a.W.shape[0]
        if sorted(perm.tolist()) != list(range(n_units)):
            raise ValueError("perm must be a permutation of the layer's output units.")
        if a.kind == "dense":
            a.W, a.mask, a.gW = a.W[:, perm], a.mask[:, perm], a.gW[:, perm]
        else:
            a.W, a.mask, a.gW = a.W[perm], a.mask[perm], a.gW[perm]
        a.b, a.gb = a.b[perm], a.gb[perm]
        if b.kind == "conv":
            b.W, b.mask, b.gW = b.W[:, perm], b.mask[:, perm], b.gW[:, perm]
        else:
            block = b.W.shape[0] // n_units
            cols = (perm[:, None] * block + np.arange(block)[None, :]).ravel()
            b.W, b.mask, b.gW = b.W[cols], b.mask[cols], b.gW[cols]

    def permute_io(self, input_perm=None, output_perm=None):
        """Permute input features and/or outputs; undone automatically in forward.

        ``input_perm[k]`` is the original feature placed at position ``k`` of
        the first weight layer; ``output_perm[k]`` is the original output
        computed at position ``k`` of the last layer.
        """
        wl = self.weight_layers
        if input_perm is not None:
            first = wl[0]
            if first.kind != "dense":
                raise ValueError("Input permutation is only defined for a dense first layer.")
            input_perm = np.asarray(input_perm)
            first.W, first.mask, first.gW = (first.W[input_perm], first.mask[input_perm],
                                             first.gW[input_perm])
            base = self.input_perm if self.input_perm is not None else np.arange(len(input_perm))
            self.input_perm = base[input_perm]
        if output_perm is not None:
            last = wl[-1]
            if last.kind != "dense":
                raise ValueError("Output permutation is only defined for a dense last layer.")
            output_perm = np.asarray(output_perm)
            last.W, last.mask, last.gW = (last.W[:, output_perm], last.mask[:, output_perm],
                                          last.gW[:, output_perm])
            last.b, last.gb = last.b[output_perm], last.gb[output_perm]
            base = (self.output_perm if self.output_perm is not None
                    else np.arange(len(output_perm)))
            self.output_perm = base[output_perm]

    # ------------------------------------------------------------ output map
    def fold_output_affine(self, scale, offset):
        """Fold ``out * scale + offset`` into the last weight layer, in place.

        Afterwards :meth:`forward` returns ``old_forward(x) * scale + offset``
        (per output, original output order) with no extra layer: column ``k``
        of the last weight matrix and bias ``k`` are rescaled and shifted, in
        the packed order of :attr:`output_perm`. Zero weights stay exactly
        zero and the masks are not touched, so the tiles the encrypted
        inference packs are the same before and after. Folding ``(1 / scale,
        -offset / scale)`` undoes it (up to rounding).

        Parameters
        ----------
        scale : array-like of shape (n_outputs,)
            Positive factors, one per output.
        offset : array-like of shape (n_outputs,)
            Shifts added after scaling.

        Returns
        -------
        self : Network
            The network, changed in place.

        Raises
        ------
        ValueError
            If the last weight layer is not dense, the shapes do not match the
            outputs or a factor is not finite and positive.
        """
        last = self.weight_layers[-1]
        if last.kind != "dense":
            raise ValueError("Output maps can only be folded into a dense last layer.")
        n_out = last.W.shape[1]
        scale = np.broadcast_to(np.asarray(scale, dtype=np.float64), (n_out,))
        offset = np.broadcast_to(np.asarray(offset, dtype=np.float64), (n_out,))
        if not np.all(np.isfinite(scale) & (scale > 0)) or not np.all(np.isfinite(offset)):
            raise ValueError("scale must be finite and positive, offset finite.")
        if self.output_perm is not None:
            scale, offset = scale[self.output_perm], offset[self.output_perm]
        last.W *= scale
        last.b *= scale
        last.b += offset
        return self
