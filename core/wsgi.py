import gc
import os
from importlib import import_module

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "core.settings")
application = get_wsgi_application()

# Build the API (routers, schemas) now rather than on the first request, then move
# everything loaded so far out of the collector's reach: a full collection no longer
# walks the ~120,000 objects of the loaded app, which stalled a worker for ~45 ms.
import_module(settings.ROOT_URLCONF)
gc.freeze()
