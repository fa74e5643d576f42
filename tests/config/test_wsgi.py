import gc


def test_the_wsgi_module_moves_start_up_objects_out_of_the_collected_generations():
    from config import wsgi

    assert wsgi.application is not None
    assert gc.get_freeze_count() > 0


def test_the_wsgi_module_collects_the_youngest_generation_less_often(settings):
    import importlib

    from config import wsgi

    settings.GC_GEN0_THRESHOLD = 12_345
    before = gc.get_threshold()
    try:
        importlib.reload(wsgi)
        assert gc.get_threshold() == (12_345, 10, 10)
    finally:
        gc.set_threshold(*before)
