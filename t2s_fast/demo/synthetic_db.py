"""The demo's own data: a small SQLite company database and question/SQL pairs generated from templates.

Written for this project (not taken from Spider), so the demo needs no download. Everything is derived from
one seed: the same seed gives the same database, the same questions and the same split.

The held-out set is what makes the demo's accuracy honest:
- every slot value a held-out question names (a department, a person, a city, a title, a year, a salary
  threshold) is one that no training question names, and
- some held-out questions come from templates that combine filters the training set only ever saw alone.
The model cannot pass by memorising training pairs; it has to map new questions onto SQL.
"""

from __future__ import annotations

import random
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from t2s_fast.errors import T2SError

DB_ID = "company"

DEPARTMENTS = ("Sales", "Marketing", "Finance", "Legal", "Research", "Support", "Design", "Security",
               "Logistics", "Training", "Purchasing", "Quality")
CITIES = ("Paris", "Berlin", "Madrid", "Rome", "Vienna", "Lisbon", "Oslo", "Prague")
TITLES = ("Engineer", "Analyst", "Manager", "Clerk", "Director", "Consultant", "Technician", "Assistant")
FIRST_NAMES = ("Alice", "Bruno", "Chloe", "David", "Elena", "Felix", "Grace", "Hugo", "Irene", "Jonas", "Karin",
               "Liam", "Marta", "Nico", "Olga", "Pablo", "Quinn", "Rosa", "Sven", "Tara", "Ugo", "Vera", "Willem",
               "Yara", "Zoe")
LAST_NAMES = ("Adams", "Berg", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Horvat", "Ivanova", "Jensen",
              "Keller", "Lopez", "Moreau", "Novak", "Olsen", "Petit", "Rossi", "Silva", "Weber", "Young")
YEARS = tuple(range(2008, 2024))
THRESHOLDS = tuple(range(40000, 120001, 5000))  # salary thresholds questions may ask about

SCHEMA_SQL = """
CREATE TABLE department (
  dept_id INTEGER PRIMARY KEY,
  name TEXT,
  city TEXT,
  budget INTEGER
);
CREATE TABLE employee (
  emp_id INTEGER PRIMARY KEY,
  name TEXT,
  title TEXT,
  salary INTEGER,
  hire_year INTEGER,
  dept_id INTEGER REFERENCES department(dept_id)
);
"""

JOIN = "employee JOIN department ON employee.dept_id = department.dept_id"


@dataclass(frozen=True)
class Template:
    """One kind of question. ``questions`` are paraphrases; ``sql`` is the gold query. Both use the same
    {slot} names; each slot kind draws its values from the train or the held-out pool of that kind."""

    name: str
    questions: tuple[str, ...]
    sql: str
    heldout_only: bool = False  # a combination never seen in training


TEMPLATES: tuple[Template, ...] = (
    Template("count_all", ("How many employees are there?", "Count the employees."),
             "SELECT COUNT(*) FROM employee"),
    Template("count_dept", ("How many employees work in the {dept} department?",
                            "Count the employees of the {dept} department."),
             f"SELECT COUNT(*) FROM {JOIN} WHERE department.name = '{{dept}}'"),
    Template("names_dept", ("List the names of employees in the {dept} department.",
                            "Who works in the {dept} department?"),
             f"SELECT employee.name FROM {JOIN} WHERE department.name = '{{dept}}'"),
    Template("avg_salary_dept", ("What is the average salary in the {dept} department?",
                                 "Give the average salary of the {dept} department's employees."),
             f"SELECT AVG(employee.salary) FROM {JOIN} WHERE department.name = '{{dept}}'"),
    Template("max_salary_dept", ("What is the highest salary in the {dept} department?",),
             f"SELECT MAX(employee.salary) FROM {JOIN} WHERE department.name = '{{dept}}'"),
    Template("top_paid_dept", ("Who is the best paid employee of the {dept} department?",),
             f"SELECT employee.name FROM {JOIN} WHERE department.name = '{{dept}}' "
             "ORDER BY employee.salary DESC LIMIT 1"),
    Template("names_year", ("List the names of employees hired in {year}.", "Who was hired in {year}?"),
             "SELECT name FROM employee WHERE hire_year = {year}"),
    Template("count_after_year", ("How many employees were hired after {year}?",),
             "SELECT COUNT(*) FROM employee WHERE hire_year > {year}"),
    Template("names_salary_above", ("List the names of employees earning more than {amount}.",
                                    "Which employees have a salary above {amount}?"),
             "SELECT name FROM employee WHERE salary > {amount}"),
    Template("count_salary_below", ("How many employees earn less than {amount}?",),
             "SELECT COUNT(*) FROM employee WHERE salary < {amount}"),
    Template("title_of", ("What is the title of {person}?", "What job does {person} have?"),
             "SELECT title FROM employee WHERE name = '{person}'"),
    Template("salary_of", ("What is the salary of {person}?", "How much does {person} earn?"),
             "SELECT salary FROM employee WHERE name = '{person}'"),
    Template("dept_of", ("Which department does {person} work in?",),
             f"SELECT department.name FROM {JOIN} WHERE employee.name = '{{person}}'"),
    Template("year_of", ("In which year was {person} hired?",),
             "SELECT hire_year FROM employee WHERE name = '{person}'"),
    Template("city_of_dept", ("In which city is the {dept} department?",),
             "SELECT city FROM department WHERE name = '{dept}'"),
    Template("budget_of_dept", ("What is the budget of the {dept} department?",),
             "SELECT budget FROM department WHERE name = '{dept}'"),
    Template("depts_in_city", ("List the departments located in {city}.", "Which departments are in {city}?"),
             "SELECT name FROM department WHERE city = '{city}'"),
    Template("count_title", ("How many employees have the title {title}?", "How many {title}s are there?"),
             "SELECT COUNT(*) FROM employee WHERE title = '{title}'"),
    Template("names_title", ("List the names of all {title}s.",),
             "SELECT name FROM employee WHERE title = '{title}'"),
    Template("avg_salary_title", ("What is the average salary of a {title}?",),
             "SELECT AVG(salary) FROM employee WHERE title = '{title}'"),
    Template("count_per_dept", ("How many employees does each department have?",),
             f"SELECT department.name, COUNT(*) FROM {JOIN} GROUP BY department.name"),
    # Held-out only: filters and aggregates the training set used, in combinations it never showed.
    Template("count_dept_after_year", ("How many employees of the {dept} department were hired after {year}?",),
             f"SELECT COUNT(*) FROM {JOIN} WHERE department.name = '{{dept}}' AND employee.hire_year > {{year}}",
             heldout_only=True),
    Template("names_title_above", ("List the names of {title}s earning more than {amount}.",),
             "SELECT name FROM employee WHERE title = '{title}' AND salary > {amount}", heldout_only=True),
    Template("max_salary_title", ("What is the highest salary of a {title}?",),
             "SELECT MAX(salary) FROM employee WHERE title = '{title}'", heldout_only=True),
    Template("names_city", ("List the names of employees working in {city}.",),
             f"SELECT employee.name FROM {JOIN} WHERE department.city = '{{city}}'", heldout_only=True),
)

SLOT_KINDS = ("dept", "person", "city", "title", "year", "amount")


@dataclass
class Example:
    id: str
    template: str
    split: str  # "train" | "heldout"
    question: str
    sql: str
    slots: dict[str, str | int]


@dataclass
class Database:
    path: Path
    departments: list[dict]
    employees: list[dict]


def build_database(path: str | Path, *, seed: int = 0) -> Database:
    """Create (or recreate) the demo database at ``path``: 12 departments and 144 employees."""
    rng = random.Random(f"db-{seed}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    departments = []
    for i, name in enumerate(DEPARTMENTS, start=1):
        departments.append({"dept_id": i, "name": name, "city": CITIES[(i - 1) % len(CITIES)] if i <= len(CITIES)
                            else rng.choice(CITIES), "budget": rng.randrange(200, 2000) * 1000})
    people = [f"{first} {last}" for first in FIRST_NAMES for last in LAST_NAMES]
    rng.shuffle(people)
    employees = []
    for i, name in enumerate(people[: 12 * len(DEPARTMENTS)], start=1):
        title = TITLES[i % len(TITLES)] if i <= len(TITLES) else rng.choice(TITLES)
        employees.append({"emp_id": i, "name": name, "title": title, "salary": rng.randrange(60, 260) * 500,
                          "hire_year": rng.choice(YEARS), "dept_id": (i - 1) % len(DEPARTMENTS) + 1})
    tmp = path.with_name(path.name + ".partial")
    tmp.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp)
    try:
        conn.executescript(SCHEMA_SQL)
        conn.executemany("INSERT INTO department VALUES (:dept_id, :name, :city, :budget)", departments)
        conn.executemany("INSERT INTO employee VALUES (:emp_id, :name, :title, :salary, :hire_year, :dept_id)",
                         employees)
        conn.commit()
    finally:
        conn.close()
    tmp.replace(path)
    return Database(path, departments, employees)


def _split(values: list, heldout_share: float, rng: random.Random) -> tuple[list, list]:
    """Disjoint (train, held-out) pools of one slot kind."""
    values = list(values)
    rng.shuffle(values)
    k = max(1, round(len(values) * heldout_share))
    return values[k:], values[:k]


def slot_pools(db: Database, *, seed: int = 0) -> dict[str, dict[str, list]]:
    """{kind: {"train": [...], "heldout": [...]}}, the two pools disjoint for every kind."""
    rng = random.Random(f"pools-{seed}")
    used_cities = sorted({d["city"] for d in db.departments})
    raw = {
        "dept": [d["name"] for d in db.departments],
        "person": [e["name"] for e in db.employees],
        "city": used_cities,
        "title": sorted({e["title"] for e in db.employees}),
        "year": sorted({e["hire_year"] for e in db.employees}),
        "amount": list(THRESHOLDS),
    }
    pools = {}
    for kind in SLOT_KINDS:
        train, heldout = _split(raw[kind], 0.3, rng)
        pools[kind] = {"train": train, "heldout": heldout}
    return pools


def _slots_of(template: Template) -> list[str]:
    text = " ".join(template.questions) + " " + template.sql
    return [k for k in SLOT_KINDS if "{" + k + "}" in text]


def _instantiate(template: Template, pools: dict, split: str, rng: random.Random, idx: int) -> Example:
    slots = {k: rng.choice(pools[k][split]) for k in _slots_of(template)}
    question = rng.choice(template.questions).format(**slots)
    sql = template.sql.format(**slots)
    return Example(id=f"{split}-{idx:04d}", template=template.name, split=split, question=question, sql=sql,
                   slots=slots)


def generate_examples(db: Database, *, n_train: int, n_heldout: int, seed: int = 0,
                      heldout_new_template_share: float = 0.25) -> tuple[list[Example], list[Example]]:
    """(train, held-out) examples. Train cycles through the shared templates (train values only); the held-out
    set uses held-out values only, and about ``heldout_new_template_share`` of it comes from held-out-only
    templates. Duplicate questions are skipped so the held-out set has no repeats."""
    if n_train < 1 or n_heldout < 1:
        raise T2SError(f"the demo needs at least one training and one held-out question (got {n_train}, {n_heldout})")
    rng = random.Random(f"examples-{seed}")
    pools = slot_pools(db, seed=seed)
    shared = [t for t in TEMPLATES if not t.heldout_only]
    new = [t for t in TEMPLATES if t.heldout_only]

    def draw(templates_for: list[Template], count: int, split: str, start: int, seen: set[str]) -> list[Example]:
        out: list[Example] = []
        attempts = misses = 0
        while len(out) < count:
            attempts += 1
            if misses > 2000:  # the templates and value pools hold no more distinct questions
                raise T2SError(f"could not generate {count} distinct {split} questions (only {len(out)}); "
                               "ask for fewer")
            # Training cycles through its templates so each is equally represented.
            template = templates_for[attempts % len(templates_for)] if split == "train" else rng.choice(templates_for)
            ex = _instantiate(template, pools, split, rng, start + len(out))
            if ex.question in seen:
                misses += 1
                continue
            misses = 0
            seen.add(ex.question)
            out.append(ex)
        return out

    train = draw(shared, n_train, "train", 0, set())
    n_new = min(n_heldout, round(n_heldout * heldout_new_template_share))
    seen: set[str] = {ex.question for ex in train}
    heldout = draw(shared, n_heldout - n_new, "heldout", 0, seen)
    heldout += draw(new, n_new, "heldout", len(heldout), seen)
    rng.shuffle(heldout)
    return train, heldout


@dataclass
class DemoData:
    db_root: Path  # <db_root>/<db_id>/<db_id>.sqlite, the layout `eval --db-root` reads
    db_path: Path
    train_file: Path
    heldout_file: Path
    schema_text: str
    n_train: int
    n_heldout: int
    n_heldout_new_templates: int


def prepared_record(ex: Example, schema_text: str) -> dict:
    """One line in the format `t2s-fast prepare` writes (id, source, db_id, dialect, question, sql, messages),
    with the messages from the project's one prompt builder."""
    from t2s_fast.prompt import build_messages

    messages = build_messages(dialect="sqlite", db_id=DB_ID, schema=schema_text, question=ex.question, sql=ex.sql)
    return {"id": f"demo-{ex.id}", "source": "demo", "db_id": DB_ID, "dialect": "sqlite", "question": ex.question,
            "sql": ex.sql, "messages": messages, "template": ex.template}


def write_demo_data(out_dir: str | Path, *, n_train: int = 300, n_heldout: int = 50, seed: int = 0) -> DemoData:
    """Build the database and write train.jsonl and heldout.jsonl under ``out_dir``.

    The schema in the prompt has no sample values: the questions name the values they filter on, and a short
    prompt keeps CPU fine-tuning fast."""
    from t2s_fast.data.schema_text import schema_text as render_schema_text
    from t2s_fast.jsonl import write_jsonl
    from t2s_fast.schema import read_sqlite_schema

    out_dir = Path(out_dir)
    db_root = out_dir / "databases"
    db = build_database(db_root / DB_ID / f"{DB_ID}.sqlite", seed=seed)
    schema_text = render_schema_text(read_sqlite_schema(db.path, db_id=DB_ID, sample_values=0), "sqlite", None).text
    train, heldout = generate_examples(db, n_train=n_train, n_heldout=n_heldout, seed=seed)
    train_file, heldout_file = out_dir / "train.jsonl", out_dir / "heldout.jsonl"
    write_jsonl(train_file, (prepared_record(ex, schema_text) for ex in train))
    write_jsonl(heldout_file, (prepared_record(ex, schema_text) for ex in heldout))
    new_names = {t.name for t in TEMPLATES if t.heldout_only}
    return DemoData(db_root=db_root, db_path=db.path, train_file=train_file, heldout_file=heldout_file,
                    schema_text=schema_text, n_train=len(train), n_heldout=len(heldout),
                    n_heldout_new_templates=sum(ex.template in new_names for ex in heldout))
