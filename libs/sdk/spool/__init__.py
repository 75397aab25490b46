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

`spool.projects`, `spool.packages`, `spool.services`, `spool.executions`, `spool.triggers`,
`spool.events` and `spool.users` use the client `spool.login` set (or one from the environment
and the config file); a `spool.Client(url, token)` has the same repositories for another
platform. A project has its own: `project.secrets`, `project.members`, `project.bots`.
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
from spool.event import Events
from spool.execution import Execution, Executions
from spool.filters import Filters, FiltersMethod, FiltersOperations, FiltersResource
from spool.logs import LogLine
from spool.member import Bot, Bots, Member, MemberRole, Members
from spool.notification import Notification
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
from spool.secret import Secret, Secrets
from spool.service import (
    ScalingDecision,
    Service,
    ServiceLoad,
    ServiceRevision,
    Services,
    ServiceStatus,
)
from spool.trigger import Trigger, Triggers, TriggerVerdict
from spool.user import NewToken, NewUser, TokenInfo, Tokens, User, Users
from spool_common.messages import NotificationType
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
events = Events()
users = Users()

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
    "Bot",
    "Bots",
    "Client",
    "ConfigError",
    "Conflict",
    "Context",
    "Dataset",
    "Deployment",
    "Detail",
    "Events",
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
    "Member",
    "MemberRole",
    "Members",
    "NewToken",
    "NewUser",
    "NotFound",
    "Notification",
    "NotificationType",
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
    "Secret",
    "Secrets",
    "ServerError",
    "Service",
    "ServiceLoad",
    "ServiceRevision",
    "ServiceStatus",
    "Services",
    "SpoolConnectionError",
    "SpoolError",
    "TokenInfo",
    "Tokens",
    "Trigger",
    "TriggerAction",
    "TriggerExecutionMode",
    "TriggerResource",
    "TriggerType",
    "TriggerVerdict",
    "Triggers",
    "Unauthorized",
    "Unavailable",
    "User",
    "Users",
    "config",
    "events",
    "executions",
    "function",
    "login",
    "packages",
    "projects",
    "replay",
    "services",
    "triggers",
    "users",
]
