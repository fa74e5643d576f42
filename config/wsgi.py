import gc
import os

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# Everything loaded so far (Django, the apps, their modules) lives as long as the process: move it
# out of the garbage collector's generations, so collections triggered by a request's many
# short-lived objects (an ingest batch makes thousands) do not traverse it again and again.
gc.freeze()
# And collect the youngest generation every GC_GEN0_THRESHOLD allocations (Python's default: 700): a
# 100-event ingest batch allocates tens of thousands of objects, nearly all freed by reference
# counting alone, and a collection every 700 of them cost 5-10% of the request's CPU.
gc.set_threshold(settings.GC_GEN0_THRESHOLD, 10, 10)
