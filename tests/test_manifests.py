"""dsatok.data.manifests helpers."""


def test_spread_takes_evenly_spaced_items_and_all_when_asked_for_more():
    from dsatok.data.manifests import spread

    items = list(range(10))
    assert spread(items, 4) == [0, 2, 5, 7]
    assert spread(items, 0) == items and spread(items, 10) == items and spread(items, 99) == items
