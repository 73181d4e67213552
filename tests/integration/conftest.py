from tests.integration.hub_fixtures import *  # noqa: F403
from tests.integration.stack_fixtures import *  # noqa: F403
