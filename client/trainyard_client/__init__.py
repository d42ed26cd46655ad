"""Python client and command line of Trainyard's JSON API.

    from trainyard_client import Client

    client = Client("http://127.0.0.1:5000", token="ty_...")
    project = client.create_project_from_schema_file("definition.json")
    client.files.upload_folder(project, "batches/")
    final = client.executions.follow(client.executions.train(project), on_line=print)
"""

__version__ = "0.1.0"

from trainyard_client.client import Client  # noqa: E402
from trainyard_client.errors import (  # noqa: E402
    ApiError,
    ConnectionFailed,
    ExecutionFailed,
    NotLoggedIn,
    TrainyardError,
)

__all__ = ["ApiError", "Client", "ConnectionFailed", "ExecutionFailed", "NotLoggedIn",
           "TrainyardError", "__version__"]
