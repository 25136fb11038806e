"""Open a campaign archive with ADIOS2 and print what it holds, then one variable's values.

    python examples/read_back.py ARCHIVE.aca [VARIABLE]
"""

from __future__ import annotations

import sys

import adios2


def main(path: str, variable: str | None) -> None:
    with adios2.FileReader(path) as reader:
        variables = reader.available_variables()
        print(f"{path}: {len(variables)} variables")
        for name in sorted(variables):
            info = variables[name]
            print(f"  {info['Type']:<8} {name:<32} shape [{info['Shape']}] steps {info['AvailableStepsCount']}")
        variable = variable or sorted(variables)[0]
        steps = int(variables[variable]["AvailableStepsCount"])
        values = reader.read(variable, step_selection=[0, steps])
        print(f"{variable} (all {steps} steps):")
        print(values)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
