"""What a CLI error must look like: one line that names the problem and the fix, and no traceback."""


def one_error_line(capsys) -> str:
    """The CLI's error line from captured stderr (progress bars aside); fails on a traceback or several errors."""
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if line.startswith("genxfer ")]
    assert len(errors) == 1 and "Traceback" not in err, err[-3000:]
    return errors[0]
