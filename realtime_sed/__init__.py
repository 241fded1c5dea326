"""realtime-sed: real-time sound event detection with lightweight dilated CNNs.

The runtime needs numpy and ONNX Runtime only; torch lives in the separate `train` package.
"""

__version__ = "0.1.0"
