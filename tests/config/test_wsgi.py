import gc


def test_the_wsgi_module_moves_start_up_objects_out_of_the_collected_generations():
    from config import wsgi

    assert wsgi.application is not None
    assert gc.get_freeze_count() > 0
