"""What synthetic hospitals treat: the condition table (prevalence, onset, care, drugs), hospital profiles.

Every figure that comes from the literature carries its source in ``source``. ``prevalence`` is the share
of a *general* population of 0–17-year-olds (ages uniform, as the generator draws them) who have the
condition recorded by the reference date; a hospital profile multiplies it (referral case mix).
Onset ages follow a piecewise-linear density given by knots ``(age in years, relative density)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Literal

import numpy as np
import numpy.typing as npt

from phds.omop.simulator.picu_truth import PicuMix

#: Live births that are male: 105 boys per 100 girls (ONS, Births in England and Wales 2021).
MALE_SHARE = 0.512
#: Children are 0–17 at the reference date, so births span 18 years.
MAX_AGE_YEARS = 18


@dataclass(frozen=True)
class DrugRule:
    """A drug a child with the condition gets: share of children, days supplied per prescription."""

    drug: str
    share: float
    days_supply: int
    #: "followup": at every condition visit while in active care; "episode": at each acute episode.
    setting: Literal["followup", "episode"] = "followup"
    #: prescribed only from this many days after onset (e.g. ALL maintenance) until this many
    start_day: int = 0
    stop_day: int | None = None
    #: rules of one condition sharing a non-empty group are alternatives: each child gets one of them
    group: str = ""
    #: share among girls when it differs from ``share`` (which then applies to boys)
    female_share: float | None = None


@dataclass(frozen=True)
class ConditionSpec:
    """One paediatric condition as the generator models it."""

    key: str
    prevalence: float
    onset_knots: tuple[tuple[float, float], ...]
    kind: Literal["chronic", "acute"]
    source: str
    male_rr: float = 1.0
    #: years of condition-specific follow-up after onset (None: until the reference date)
    active_years: float | None = None
    followup_per_year: float = 0.0
    #: probability that the diagnosis visit is an admission / an emergency visit (rest: outpatient)
    p_inpatient: float = 0.0
    p_emergency: float = 0.0
    los_days: float = 2.0
    #: acute conditions: mean number of further episodes, spread over this many years after the first
    extra_episodes: float = 0.0
    episode_years: float = 1.0
    seasonal: bool = False
    #: mortality: multiplier of the infant (first-year) death hazard, and an extra yearly death hazard
    #: for ``death_years`` after onset
    infant_death_hr: float = 1.0
    death_hazard: float = 0.0
    death_years: float = 5.0
    drugs: tuple[DrugRule, ...] = ()
    #: (procedure key, probability) at the diagnosis visit (oxygen: at admitted diagnoses only)
    procedures: tuple[tuple[str, float], ...] = ()


CONDITIONS: tuple[ConditionSpec, ...] = (
    ConditionSpec(
        "asthma",
        0.09,
        ((0, 0), (1, 0.3), (3, 1), (7, 1), (12, 0.5), (18, 0.2)),
        "chronic",
        source="Asthma UK: 1.1 million UK children (1 in 11) treated for asthma; ISAAC phase III (Lai et al. "
        "2009, Thorax 64:476) current wheeze ~10-14% in 6-7 and 13-14 year olds; boys ~1.5x before puberty",
        male_rr=1.4,
        followup_per_year=1.5,
        drugs=(DrugRule("salbutamol", 1.0, 90),),  # the ICS share is set by the ground-truth model (truth.py)
    ),
    ConditionSpec(
        "bronchiolitis",
        0.20,
        ((0, 1), (0.25, 1.2), (0.5, 0.8), (1, 0.3), (2, 0)),
        "acute",
        source="NICE NG9 (2015): ~1 in 3 infants develop bronchiolitis in the first year, 2-3% are admitted; "
        "RSV season Nov-Feb (UKHSA surveillance). We record the ~20% who present to hospital care.",
        male_rr=1.2,
        p_inpatient=0.15,
        p_emergency=0.6,
        los_days=3.0,
        extra_episodes=0.1,
        seasonal=True,
        procedures=(("oxygen_therapy", 0.6),),
    ),
    ConditionSpec(
        "otitis_media",
        0.30,
        ((0, 0), (0.5, 1), (2, 1), (4, 0.4), (7, 0.1), (10, 0)),
        "acute",
        source="Teele et al. 1989, J Infect Dis 160:83: 62% of children have acute otitis media by 1 year "
        "and 83% by 3; recurrence common. We record the ~30% with a hospital-coded episode.",
        male_rr=1.1,
        p_emergency=0.3,
        extra_episodes=1.5,
        episode_years=2.0,
        drugs=(DrugRule("amoxicillin", 0.7, 5, "episode"),),  # NICE NG91: 5-7 day course when needed
    ),
    ConditionSpec(
        "type1_diabetes",
        0.0020,
        ((0, 0), (1, 0.3), (5, 1), (8, 0.7), (12, 1.1), (14, 0.8), (18, 0.4)),
        "chronic",
        source="NPDA 2022/23 (RCPCH): ~0.2% of children in England and Wales have type 1 diabetes; onset "
        "peaks at 4-6 and 10-14 years (Patterson et al. 2019, Diabetologia 62:408)",
        followup_per_year=4.0,
        p_inpatient=0.3,
        los_days=3.0,
        death_hazard=0.0002,
        drugs=(DrugRule("insulin", 1.0, 90),),  # NICE NG18: quarterly clinic review with HbA1c
    ),
    ConditionSpec(
        "epilepsy",
        0.0045,
        ((0, 1.5), (1, 1), (5, 0.8), (10, 0.8), (18, 0.6)),
        "chronic",
        source="Joint Epilepsy Council 2011: ~1 in 220 UK children has epilepsy; incidence highest in "
        "infancy (Camfield & Camfield 2015, Epileptic Disord 17:117)",
        followup_per_year=2.0,
        p_inpatient=0.2,
        p_emergency=0.3,
        los_days=2.0,
        death_hazard=0.001,
        # MHRA 2018 valproate pregnancy prevention programme: valproate is avoided in girls
        drugs=(
            DrugRule("levetiracetam", 0.65, 90, group="aed", female_share=0.95),
            DrugRule("valproate", 0.35, 90, group="aed", female_share=0.05),
        ),
    ),
    ConditionSpec(
        "adhd",
        0.05,
        ((0, 0), (4, 0), (6, 1), (9, 1), (13, 0.5), (18, 0.2)),
        "chronic",
        source="Polanczyk et al. 2007, Am J Psychiatry 164:942: worldwide pooled prevalence 5.3%; "
        "boys:girls about 3:1 in clinical samples (Willcutt 2012, Neurotherapeutics 9:490)",
        male_rr=3.0,
        followup_per_year=2.0,
        drugs=(DrugRule("methylphenidate", 0.8, 60),),  # NICE NG87: first-line drug for children >= 5
    ),
    ConditionSpec(
        "obesity",
        0.15,
        ((0, 0), (2, 0.3), (4, 1), (8, 1), (11, 1.2), (18, 0.5)),
        "chronic",
        source="NHS England NCMP 2022/23: obesity 9.2% at reception (4-5 y) and 22.7% in year 6 (10-11 y)",
        followup_per_year=0.5,
    ),
    ConditionSpec(
        "all",
        0.00035,
        ((0, 0.2), (1, 0.6), (2, 1.5), (5, 1.5), (7, 0.6), (12, 0.4), (18, 0.3)),
        "chronic",
        source="Cancer Research UK: ALL ~4 per 100,000 children per year, peak at 2-5 years; ever-diagnosed "
        "share of 0-17s ~ incidence x mean years at risk (~9)",
        male_rr=1.2,
        active_years=3.0,
        followup_per_year=12.0,
        p_inpatient=1.0,
        los_days=21.0,
        death_hazard=0.02,
        death_years=5.0,  # ~90% 5-year survival (UKALL 2011)
        drugs=(
            DrugRule("methotrexate", 1.0, 28, start_day=180, stop_day=1000),
            DrugRule("mercaptopurine", 1.0, 28, start_day=180, stop_day=1000),
        ),
        procedures=(("bone_marrow_aspiration", 1.0), ("chemotherapy", 1.0)),
    ),
    ConditionSpec(
        "chd",
        0.008,
        ((0, 40), (0.1, 2), (1, 0.5), (5, 0.1), (18, 0.05)),
        "chronic",
        source="van der Linde et al. 2011, J Am Coll Cardiol 58:2241: birth prevalence of congenital heart "
        "disease 8.2/1000 in Europe; most diagnosed in the first weeks",
        followup_per_year=1.0,
        p_inpatient=0.6,
        los_days=10.0,
        infant_death_hr=8.0,
        death_hazard=0.002,
        death_years=18.0,
        drugs=(DrugRule("furosemide", 0.3, 90, stop_day=730),),
        procedures=(("echocardiography", 1.0), ("cardiac_surgery", 0.3)),
    ),
    ConditionSpec(
        "cystic_fibrosis",
        0.0004,
        ((0, 0), (0.02, 5), (0.15, 5), (0.3, 0.2), (18, 0.02)),
        "chronic",
        source="UK CF Registry: ~1 in 2,500 live births; newborn screening (since 2007) diagnoses most by "
        "4-6 weeks",
        followup_per_year=6.0,
        p_inpatient=0.2,
        los_days=7.0,
        death_hazard=0.003,
        death_years=18.0,
        drugs=(DrugRule("dornase_alfa", 0.8, 90, start_day=365),),
    ),
    ConditionSpec(
        "prematurity",
        0.075,
        ((0, 1), (0.003, 0)),
        "chronic",
        source="ONS Birth characteristics 2021: 7.6% of live births in England and Wales were preterm "
        "(<37 weeks); preterm birth causes most infant deaths",
        male_rr=1.1,
        active_years=2.0,
        followup_per_year=2.0,
        p_inpatient=1.0,
        los_days=14.0,
        infant_death_hr=6.0,
        drugs=(DrugRule("caffeine", 0.3, 30, stop_day=60),),
    ),
)

CONDITION_KEYS = tuple(c.key for c in CONDITIONS)
_BY_KEY = {c.key: c for c in CONDITIONS}


def condition(key: str) -> ConditionSpec:
    """The spec of one condition by key."""
    return _BY_KEY[key]


@dataclass(frozen=True)
class HospitalProfile:
    """A hospital's case mix: referral multipliers of condition prevalence and of care intensity."""

    slug: str
    name: str
    description: str
    city: str
    condition_rr: dict[str, float] = field(default_factory=dict)
    inpatient_rr: float = 1.0
    visit_rr: float = 1.0
    #: share of patients first seen after birth (referrals, families who moved in)
    late_entry: float = 0.3
    #: intensive-care case mix (the PICU sepsis ground truth, picu_truth)
    picu: PicuMix = field(default_factory=PicuMix)

    def rr(self, key: str) -> float:
        return self.condition_rr.get(key, 1.0)


PROFILES: tuple[HospitalProfile, ...] = (
    HospitalProfile(
        "north-general",
        "North General Children's Hospital",
        "General children's hospital: common acute illness (bronchiolitis, otitis), asthma, obesity.",
        "Northbridge",
        {"bronchiolitis": 1.3, "otitis_media": 1.3, "all": 0.3, "chd": 0.7, "cystic_fibrosis": 0.5},
        late_entry=0.2,
        picu=PicuMix(rate=0.015, severity_mean=0.5, severity_sd=0.9, infant_share=0.2),
    ),
    HospitalProfile(
        "central-tertiary",
        "Central Tertiary Children's Hospital",
        "Tertiary referral centre for paediatric oncology and cardiac surgery: more ALL, CHD, admissions.",
        "Centralia",
        {"all": 8.0, "chd": 4.0, "bronchiolitis": 0.6, "otitis_media": 0.5, "epilepsy": 1.5},
        inpatient_rr=1.6,
        visit_rr=1.2,
        late_entry=0.6,
        picu=PicuMix(rate=0.04, severity_mean=1.3, severity_sd=1.2, infant_share=0.3),
    ),
    HospitalProfile(
        "west-respiratory",
        "West Respiratory and CF Centre",
        "Respiratory specialist hospital with a cystic fibrosis centre: more CF, asthma, bronchiolitis.",
        "Westhaven",
        {"cystic_fibrosis": 10.0, "asthma": 1.8, "bronchiolitis": 1.5, "all": 0.3},
        late_entry=0.5,
        picu=PicuMix(rate=0.02, severity_mean=0.9, severity_sd=1.0, infant_share=0.3),
    ),
    HospitalProfile(
        "south-neonatal",
        "South Women's and Neonatal Hospital",
        "Maternity and level-3 neonatal unit with a children's ward: more prematurity, CHD, infant illness.",
        "Southport",
        {"prematurity": 2.5, "chd": 1.5, "bronchiolitis": 1.2, "all": 0.3},
        late_entry=0.1,
        picu=PicuMix(rate=0.025, severity_mean=1.0, severity_sd=1.0, infant_share=0.6),
    ),
    HospitalProfile(
        "east-neuro-endocrine",
        "East Neuroscience and Endocrine Children's Centre",
        "Neurology, neurodevelopment and diabetes centre: more epilepsy, ADHD and type 1 diabetes.",
        "Eastfield",
        {"epilepsy": 3.0, "adhd": 2.0, "type1_diabetes": 2.5, "all": 0.5},
        late_entry=0.5,
        picu=PicuMix(rate=0.015, severity_mean=0.7, severity_sd=1.0, infant_share=0.2),
    ),
)


def hospital_profiles(n: int) -> list[HospitalProfile]:
    """Profiles of *n* hospitals, cycling through :data:`PROFILES`; repeats get ``-2``, ``-3``… slugs."""
    out = []
    for i in range(n):
        base = PROFILES[i % len(PROFILES)]
        round_ = i // len(PROFILES)
        if round_ == 0:
            out.append(base)
        else:
            out.append(
                HospitalProfile(
                    f"{base.slug}-{round_ + 1}",
                    f"{base.name} {round_ + 1}",
                    base.description,
                    base.city,
                    dict(base.condition_rr),
                    base.inpatient_rr,
                    base.visit_rr,
                    base.late_entry,
                    base.picu,
                )
            )
    return out


# ---- onset-age distributions --------------------------------------------------------------------------

#: Resolution of the onset-age grid, in days.
GRID_DAYS = np.arange(0, MAX_AGE_YEARS * 366, dtype=np.float64)


@cache
def onset_cdf(key: str) -> npt.NDArray[np.float64]:
    """Cumulative distribution of onset age on :data:`GRID_DAYS` (0 at day 0, 1 at 18 years)."""
    spec = _BY_KEY[key]
    xs = np.array([k[0] for k in spec.onset_knots]) * 365.25
    ys = np.array([k[1] for k in spec.onset_knots], dtype=np.float64)
    density = np.interp(GRID_DAYS, xs, ys, right=0.0) + 1e-12
    cdf = np.concatenate([[0.0], np.cumsum(density[:-1] + density[1:]) / 2])
    cdf /= cdf[-1]
    return cdf


@cache
def mean_onset_cdf(key: str) -> float:
    """E[F(age)] over ages uniform on 0–18 years: the share of lifetime cases present at a random age."""
    grid_max = MAX_AGE_YEARS * 365.25
    return float(np.mean(np.interp(np.linspace(0, grid_max, 4001), GRID_DAYS, onset_cdf(key))))


def risk_at_age(
    key: str, rr: float, age_days: npt.NDArray[np.int64], male: npt.NDArray[np.bool_]
) -> npt.NDArray[np.float64]:
    """Probability that a child of this age and sex has the condition recorded by the reference date.

    Chosen so that the population prevalence equals ``prevalence × rr`` for uniform ages and
    :data:`MALE_SHARE` boys, with boys at ``male_rr`` times the girls' risk.
    """
    spec = _BY_KEY[key]
    f = np.interp(age_days, GRID_DAYS, onset_cdf(key)) / mean_onset_cdf(key)
    sex_norm = spec.male_rr * MALE_SHARE + (1 - MALE_SHARE)
    sex_factor = np.where(male, spec.male_rr, 1.0) / sex_norm
    return np.minimum(spec.prevalence * rr * f * sex_factor, 1.0)


def sample_onset_days(
    key: str, rng: np.random.Generator, age_days: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """Onset ages in days drawn from the condition's onset density truncated to ``[0, age_days]``."""
    cdf = onset_cdf(key)
    upper = np.interp(age_days, GRID_DAYS, cdf)
    u = rng.random(age_days.shape[0]) * upper
    onset = np.interp(u, cdf, GRID_DAYS)
    return np.minimum(np.floor(onset).astype(np.int64), age_days)
