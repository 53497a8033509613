"""The project's construct library must not shadow the `constructs` package."""


def test_constructs_library_and_project_packages_import_together():
    import aws_cdk
    from constructs import Construct

    import config
    import ml_constructs
    import stacks.platform
    from ml_constructs.storage import ArtifactStorage

    assert issubclass(ArtifactStorage, Construct)
    assert ml_constructs.__file__ and config.__file__ and stacks.platform.__file__
    assert aws_cdk.Stack is not None
