"""The check runner shared by the Python suites: each check prints "ok NAME"
or "FAIL NAME (why)" and the suite keeps going after a failure."""


def check(name):
    """Runs the decorated function at once, as one named check."""
    def run(fn):
        try:
            fn()
            print(f"ok {name}", flush=True)
        except Exception as e:  # noqa: BLE001 - any failure is a failed check
            why = str(e).replace("\n", " ")[-300:] or type(e).__name__
            print(f"FAIL {name} ({why})", flush=True)
        return fn
    return run


def expect(cond, why):
    if not cond:
        raise AssertionError(why)
