"""Current profile (Hugging Face Neuron inference container, optimum-neuron 0.4.1)."""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
