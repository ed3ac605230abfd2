"""LeNet in pycaffe, notebook style: build it with NetSpec, train it with a hand-written SGD loop,
classify with caffe.io.Transformer. Runs on recaffe through ``import caffe``, unchanged pycaffe.

The data are scikit-learn's bundled 8×8 digits (no download), upscaled to LeNet's 28×28.
Run it with ``python examples/pycaffe/lenet_notebook.py``; each ``# %%`` starts a cell.
"""

# %% Imports and data
import os
import tempfile

import numpy as np
from sklearn.datasets import load_digits

import caffe
from caffe import layers as L
from caffe import params as P


def load_data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(train images, train labels, test images, test labels, raw 8×8 test digits).

    Images are (N, 1, 28, 28) float32 in [0, 1]: each 8×8 digit (values 0..16) resized
    bilinearly with caffe.io.resize_image.
    """
    digits = load_digits()
    raw = digits.images.astype(np.float32) / 16.0  # (1797, 8, 8)
    images = np.stack([caffe.io.resize_image(d[:, :, np.newaxis], (28, 28)) for d in raw])
    images = images.transpose(0, 3, 1, 2)  # (N, 1, 28, 28)
    order = np.random.default_rng(seed).permutation(len(raw))
    train, test = order[:1500], order[1500:]
    labels = digits.target.astype(np.float32)
    return images[train], labels[train], images[test], labels[test], raw[test]


# %% The nets: LeNet for training (loss) and for deployment (probabilities)
def lenet(batch_size: int, deploy: bool = False) -> caffe.proto.caffe_pb2.NetParameter:
    n = caffe.NetSpec()
    n.data = L.Input(shape=dict(dim=[batch_size, 1, 28, 28]))
    if not deploy:
        n.label = L.Input(shape=dict(dim=[batch_size]))
    weights = dict(weight_filler=dict(type="xavier"), param=[dict(lr_mult=1), dict(lr_mult=2)])
    n.conv1 = L.Convolution(n.data, kernel_size=5, num_output=20, **weights)
    n.pool1 = L.Pooling(n.conv1, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.conv2 = L.Convolution(n.pool1, kernel_size=5, num_output=50, **weights)
    n.pool2 = L.Pooling(n.conv2, kernel_size=2, stride=2, pool=P.Pooling.MAX)
    n.ip1 = L.InnerProduct(n.pool2, num_output=500, **weights)
    n.relu1 = L.ReLU(n.ip1, in_place=True)
    n.ip2 = L.InnerProduct(n.relu1, num_output=10, **weights)
    if deploy:
        n.prob = L.Softmax(n.ip2)
    else:
        n.loss = L.SoftmaxWithLoss(n.ip2, n.label)
    return n.to_proto()


def write_net(proto: caffe.proto.caffe_pb2.NetParameter, folder: str, name: str) -> str:
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        f.write(str(proto))
    return path


# %% Training: forward, backward, and Caffe's SGD update with momentum, by hand
def sgd_step(net: caffe.Net, history: dict, lr: float, lr_mults: dict[str, list[float]],
             momentum: float = 0.9, weight_decay: float = 5e-4) -> None:
    """Caffe's SGD update of every parameter: h = μ·h + lr·lr_mult·(∇ + λ·w); w -= h."""
    for name, blobs in net.params.items():
        for j, blob in enumerate(blobs):
            h = history.setdefault((name, j), np.zeros_like(blob.data))
            h *= momentum
            h += lr * lr_mults[name][j] * (blob.diff + weight_decay * blob.data)
            blob.data[...] -= h


def train(net: caffe.Net, proto: caffe.proto.caffe_pb2.NetParameter, images: np.ndarray,
          labels: np.ndarray, iterations: int, batch_size: int, base_lr: float = 0.01,
          seed: int = 0) -> list[float]:
    """Train with the "inv" learning-rate policy of Caffe's LeNet solver; returns the losses."""
    lr_mults = {layer.name: [spec.lr_mult for spec in layer.param] for layer in proto.layer}
    rng = np.random.default_rng(seed)
    history: dict = {}
    losses = []
    for it in range(iterations):
        batch = rng.choice(len(images), batch_size, replace=False)
        out = net.forward(data=images[batch], label=labels[batch])
        net.clear_param_diffs()  # backward accumulates into the param diffs
        net.backward()
        sgd_step(net, history, base_lr * (1 + 1e-4 * it) ** -0.75, lr_mults)
        losses.append(float(out["loss"]))
    return losses


# %% Classification with caffe.io.Transformer, from the raw 8×8 digits
def classify(deploy: caffe.Net, digits: np.ndarray) -> np.ndarray:
    """Predicted classes of (N, 8, 8) digits in [0, 1]: the Transformer resizes them to 28×28."""
    transformer = caffe.io.Transformer({"data": deploy.blobs["data"].data.shape})
    transformer.set_transpose("data", (2, 0, 1))  # H×W×K image -> K×H×W blob
    batch = np.stack([transformer.preprocess("data", d[:, :, np.newaxis]) for d in digits])
    return deploy.forward_all(data=batch)["prob"].argmax(1)


# %% Putting it together
def main(iterations: int = 300, batch_size: int = 64, seed: int = 0) -> float:
    """Train LeNet and return its accuracy on the 297 held-out digits."""
    caffe.set_mode_cpu()
    caffe.set_random_seed(seed)
    train_x, train_y, test_x, test_y, test_raw = load_data(seed)
    proto = lenet(batch_size)
    with tempfile.TemporaryDirectory() as folder:
        net = caffe.Net(write_net(proto, folder, "train.prototxt"), caffe.TRAIN)
        deploy = caffe.Net(write_net(lenet(50, deploy=True), folder, "deploy.prototxt"), caffe.TEST)
    losses = train(net, proto, train_x, train_y, iterations, batch_size, seed=seed)
    print(f"loss: first {losses[0]:.3f}, last 10 mean {np.mean(losses[-10:]):.3f}")
    deploy.share_with(net)  # the deploy net reads the trained weights
    predicted = classify(deploy, test_raw)
    accuracy = float((predicted == test_y).mean())
    print(f"test accuracy: {accuracy:.3f} on {len(test_y)} digits; first ten predicted "
          f"{predicted[:10].tolist()}, true {test_y[:10].astype(int).tolist()}")
    return accuracy


if __name__ == "__main__":
    main()
