"""gunicorn configuration: ``gunicorn -c gunicorn.conf.py 'omnichannel_core.app:get_app()'``.

The settings live in the package so that ``omnichannel serve`` uses them when installed.
"""

from omnichannel_core.gunicorn_conf import *  # noqa: F403
