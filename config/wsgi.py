import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
application = get_wsgi_application()

# Everything loaded so far (Django, the apps, their modules) lives as long as the process: move it
# out of the garbage collector's generations, so collections triggered by a request's many
# short-lived objects (an ingest batch makes thousands) do not traverse it again and again.
gc.freeze()
