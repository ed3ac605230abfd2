"""Recurrent layers: RNN, LSTM and the LSTMUnit cell."""

from recaffe.layers.recurrent import (
    lstm,  # noqa: F401
    lstm_unit,  # noqa: F401
    rnn,  # noqa: F401
)
