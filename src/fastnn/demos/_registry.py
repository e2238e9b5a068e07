"""The list of demos, and what a demo returns.

A demo is a function `run(fast, seed) -> Result`, registered with `@demo(name, description,
claim)`: `claim` is what the notes state, `Result.rows` puts each of the notes' figures beside the
one fastnn measured, `Result.numbers` holds the headline numbers (the tests check them) and
`Result.draw(plt)` returns the matplotlib figure the demo saves.
"""
from dataclasses import dataclass, field
from typing import Callable

DEMOS = {}


@dataclass(frozen=True)
class Demo:
    name: str
    description: str
    claim: str
    function: Callable


@dataclass
class Result:
    name: str
    rows: list  # (quantity, the notes' figure, fastnn's) as strings
    numbers: dict  # headline numbers by name
    draw: Callable = field(repr=False)  # draw(plt) -> a matplotlib Figure
    seconds: float = 0.0
    figure: str = None  # the PNG's path once written

    def __str__(self):
        header = ("", "notes", "fastnn")
        widths = [max(len(str(row[i])) for row in [header, *self.rows]) for i in range(3)]
        lines = [f"{self.name}: {DEMOS[self.name].description}"]
        for row in [header, *self.rows]:
            lines.append("  " + "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths))
                         .rstrip())
        return "\n".join(lines)


def demo(name, description, claim):
    """Register `run(fast, seed) -> Result` as the demo `name`."""
    def register(function):
        DEMOS[name] = Demo(name, description, claim, function)
        return function
    return register
