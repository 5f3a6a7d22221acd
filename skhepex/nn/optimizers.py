"""Stochastic optimizers (Adam and SGD with momentum), as in scikit-learn's MLP."""

import numpy as np


class SGD:
    """Stochastic gradient descent with (Nesterov) momentum.

    Parameters
    ----------
    params : list of ndarray
        The parameters, updated in place by :meth:`step`.
    learning_rate : float
        Constant step size.
    momentum : float, default=0.9
        Momentum factor.
    nesterov : bool, default=True
        Whether to use Nesterov momentum.
    """

    def __init__(self, params, learning_rate, momentum=0.9, nesterov=True):
        self.params = params
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.nesterov = nesterov
        self.velocities = [np.zeros_like(p) for p in params]

    def step(self, grads):
        """Apply one momentum update.

        Parameters
        ----------
        grads : list of ndarray
            Gradient of every array of ``params``, in the same order.
        """
        lr, mu = self.learning_rate, self.momentum
        for p, g, v in zip(self.params, grads, self.velocities):
            v *= mu
            v -= lr * g
            if self.nesterov:
                p += mu * v - lr * g
            else:
                p += v


class Adam:
    """Adam optimizer (Kingma & Ba, 2015).

    Parameters
    ----------
    params : list of ndarray
        Network arrays that :meth:`step` modifies in place.
    learning_rate : float
        Base step size, bias-corrected at every step.
    beta_1, beta_2 : float, default=0.9, 0.999
        Decay rates of the first and second moment estimates.
    epsilon : float, default=1e-8
        Added to the root of the second moment for stability.
    """

    def __init__(self, params, learning_rate, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
        self.params = params
        self.learning_rate = learning_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.t = 0
        self.ms = [np.zeros_like(p) for p in params]
        self.vs = [np.zeros_like(p) for p in params]

    def step(self, grads):
        """Apply one Adam update.

        Parameters
        ----------
        grads : list of ndarray
            Gradients matching ``params`` one to one.
        """
        self.t += 1
        b1, b2 = self.beta_1, self.beta_2
        lr = self.learning_rate * np.sqrt(1 - b2 ** self.t) / (1 - b1 ** self.t)
        for p, g, m, v in zip(self.params, grads, self.ms, self.vs):
            m *= b1
            m += (1 - b1) * g
            v *= b2
            v += (1 - b2) * g * g
            p -= lr * m / (np.sqrt(v) + self.epsilon)


def make_optimizer(solver, params, learning_rate):
    """Build the optimizer named ``solver``.

    Parameters
    ----------
    solver : {"adam", "sgd"}
        Optimizer name, as the estimators' ``solver`` parameter.
    params : list of ndarray
        Arrays to optimize in place.
    learning_rate : float
        Step size.

    Returns
    -------
    optimizer : Adam or SGD
        A fresh optimizer (zero moments) bound to ``params``.
    """
    if solver == "adam":
        return Adam(params, learning_rate)
    return SGD(params, learning_rate)
