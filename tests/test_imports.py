"""The project's construct library must not shadow the `constructs` package."""
import subprocess
import sys

from tests.helpers import ROOT


def test_constructs_library_and_project_packages_import_together():
    """A fresh interpreter, so no earlier test has already imported `constructs` for us."""
    code = (
        "from constructs import Construct\n"
        "import aws_cdk, config, stacks.platform, ml_tools.__main__\n"
        "from ml_constructs.storage import ArtifactStorage\n"
        "from ml_constructs.sagemaker import RealtimeEndpoint, MultiModelEndpoint\n"
        "from ml_constructs.neuron_compile import NeuronCompilation\n"
        "from ml_constructs.trainium_batch import ClusterNetwork, FairShareJobQueue\n"
        "for cls in (ArtifactStorage, RealtimeEndpoint, MultiModelEndpoint, NeuronCompilation, ClusterNetwork):\n"
        "    assert issubclass(cls, Construct), cls\n"
        "print('ok')\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
