"""The curriculum is listed the same way in both READMEs and in notebook 00's course map."""
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = [f"{n:02d}" for n in range(15)]  # the curriculum: chapters 00-14
ROW = re.compile(r"^\|\s*(\d\d)\s*\|(.*)$", re.M)


def _rows(markdown: str) -> dict[str, str]:
    return {number: rest for number, rest in ROW.findall(markdown)}


def _ready(number: str) -> bool:
    return any((ROOT / "notebooks").glob(f"{number}_*.ipynb"))


def _course_map() -> str:
    nb = json.loads((ROOT / "notebooks" / "00_setup_and_tour.ipynb").read_text(encoding="utf-8"))
    cells = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "markdown"]
    [cell] = [c for c in cells if "### The course map" in c]
    return cell.split("### The course map", 1)[1]


def test_course_map_in_00_lists_every_chapter_with_its_status():
    rows = _rows(_course_map())
    assert sorted(rows) == CHAPTERS, sorted(rows)
    for number, rest in rows.items():
        status = rest.rstrip(" |").rsplit("|", 1)[-1].strip()
        assert status == ("ready" if _ready(number) else "planned"), (number, status)


def test_readmes_list_every_chapter_with_its_status():
    for name, ready, planned in [("README.md", "**ready**", "planned"), ("README.zh-CN.md", "**已完成**", "计划中")]:
        rows = _rows((ROOT / name).read_text(encoding="utf-8"))
        assert sorted(rows) == CHAPTERS, (name, sorted(rows))
        for number, rest in rows.items():
            assert (ready if _ready(number) else planned) in rest, (name, number)
