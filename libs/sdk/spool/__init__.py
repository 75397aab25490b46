"""Spool's Python SDK, in dtlpy's words.

    import spool

    spool.login(token="...", url="http://127.0.0.1:8080")   # or SPOOL_TOKEN / SPOOL_URL
    project = spool.projects.create("mine")
    package = spool.packages.push(src_path="examples/hello", project=project)
    service = package.deploy(
        service_name="hello",
        runtime=spool.KubernetesRuntime(
            concurrency=4,
            autoscaler=spool.KubernetesRabbitmqAutoscaler(min_replicas=0, max_replicas=3),
        ),
    )
    print(service.execute({"name": "world"}, sync=True))    # "hello world"

`spool.projects`, `spool.packages`, `spool.services`, `spool.executions` and `spool.triggers`
use the client `spool.login` set (or one from the environment and the config file); a
`spool.Client(url, token)` has the same repositories for another platform.
"""

from spool import config
from spool.client import Client, RetryPolicy, login
from spool.errors import (
    BadRequest,
    ConfigError,
    Conflict,
    Detail,
    ExecutionFailed,
    Forbidden,
    NotFound,
    RateLimited,
    ServerError,
    SpoolConnectionError,
    SpoolError,
    Unauthorized,
    Unavailable,
)
from spool.execution import Execution, Executions
from spool.filters import Filters, FiltersMethod, FiltersOperations, FiltersResource
from spool.logs import LogLine
from spool.package import Deployment, Package, Packages
from spool.project import Project, Projects
from spool.runtime import (
    InstanceCatalog,
    KubernetesAutoscalerType,
    KubernetesRabbitmqAutoscaler,
    KubernetesRPSAutoscaler,
    KubernetesRuntime,
    PreemptionMode,
)
from spool.service import ScalingDecision, Service, ServiceRevision, Services, ServiceStatus
from spool.trigger import Trigger, Triggers
from spool_common.models import (
    ExecutionStatus,
    FunctionIO,
    OnResetAction,
    PackageInputType,
    TriggerAction,
    TriggerExecutionMode,
    TriggerResource,
    TriggerType,
)

projects = Projects()
packages = Packages()
services = Services()
executions = Executions()
triggers = Triggers()

# For user code and local runs (written alongside, in runner.py and local.py).
from spool.local import LocalServiceRunner, replay  # noqa: E402
from spool.runner import (  # noqa: E402
    Annotation,
    BaseServiceRunner,
    Context,
    Dataset,
    Item,
    Progress,
    function,
)

__all__ = [
    "Annotation",
    "BadRequest",
    "BaseServiceRunner",
    "Client",
    "ConfigError",
    "Conflict",
    "Context",
    "Dataset",
    "Deployment",
    "Detail",
    "Execution",
    "ExecutionFailed",
    "ExecutionStatus",
    "Executions",
    "Filters",
    "FiltersMethod",
    "FiltersOperations",
    "FiltersResource",
    "Forbidden",
    "FunctionIO",
    "InstanceCatalog",
    "Item",
    "KubernetesAutoscalerType",
    "KubernetesRPSAutoscaler",
    "KubernetesRabbitmqAutoscaler",
    "KubernetesRuntime",
    "LocalServiceRunner",
    "LogLine",
    "NotFound",
    "OnResetAction",
    "Package",
    "PackageInputType",
    "Packages",
    "PreemptionMode",
    "Progress",
    "Project",
    "Projects",
    "RateLimited",
    "RetryPolicy",
    "ScalingDecision",
    "ServerError",
    "Service",
    "ServiceRevision",
    "ServiceStatus",
    "Services",
    "SpoolConnectionError",
    "SpoolError",
    "Trigger",
    "TriggerAction",
    "TriggerExecutionMode",
    "TriggerResource",
    "TriggerType",
    "Triggers",
    "Unauthorized",
    "Unavailable",
    "config",
    "executions",
    "function",
    "login",
    "packages",
    "projects",
    "replay",
    "services",
    "triggers",
]
