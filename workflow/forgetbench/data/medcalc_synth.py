"""A MedCalc-Bench-style domain generated offline from the real MedCalc-Bench calculators.

MedCalc-Bench (Khandekar et al., 2024, "MedCalc-Bench: Evaluating Large Language Models for Medical
Calculations", NeurIPS Datasets & Benchmarks) pairs a patient note and a question asking for one clinical
calculation with a ground-truth answer and a step-by-step explanation that its calculator code writes. Its rows
are not shipped in any package, but the calculator code is: the `medcalc-bench` wheel (package `medcalc`)
holds the benchmark's calculators, each a function `<calc>_explanation(params) -> {"Explanation", "Answer"}`.

For each record this module
1. samples patient values for one calculator from a seeded `random.Random` (clinically plausible ranges),
   writing them in one of the units the calculator converts itself (kg / lbs; cm / in / m / ft-in;
   mg/dL / µmol/L creatinine; mEq/L / mmol/L electrolytes; g/dL / g/L albumin; °C / °F);
2. writes a short templated patient note stating those values, and findings as present, absent or - as in
   real notes - not mentioned at all (the calculators then assume "absent", and their explanation says so);
3. calls the calculator: its Explanation becomes the rationale (indentation of its multi-line templates
   stripped, nothing else changed) and its Answer the answer;
4. asks the MedCalc-Bench question for that calculator (`questions: score`, the default), or
   (`questions: risk_category`) the category its score falls in - the clinical reading of the score, e.g.
   CHA2DS2-VASc 0 / 1 / 2 or more is low / moderate / high stroke risk - with the cut-offs written in the
   question. The answer is then a label (exact match), the rationale the calculator's explanation followed by
   the line that places the score in its category. A 135M model does not learn the arithmetic from a few
   examples, so scores stay at 0; it does learn the answer format and each calculator's usual category, which
   makes risk categories the default experiment's domain (see README, "What the default shows").

Answer types follow MedCalc-Bench: integer scores are exact, decimals are correct within ±5%
(lower/upper), scores in half points (Wells' PE) are decimals with exact bounds, dates compare as dates.

Where a unit conversion inside `medcalc` would lose precision, values are sampled so that it does not: the
package rounds intermediate moles and grams to 3 decimals, so µmol/L creatinine is sampled as the µmol/L
equivalent of a 0.1 mg/dL step (below 11 mg/dL, where the round trip is exact), and molar units of
glucose, cholesterol, BUN and calcium (which would be off by up to 30%) are not used.

Calculators left out on purpose: Target Weight (its module fails to import in medcalc-bench 1.7.0),
CURB-65, Maintenance Fluids above 20 kg and QTc Fridericia (their explanations contradict their own
arithmetic in some branches), Serum Osmolality (its explanation prints BUN in place of glucose), and Naegele
due dates with cycles shorter than 28 days (the code adds the days its explanation says it subtracts).
"""

from __future__ import annotations

import importlib
import math
import random
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Callable

from forgetbench.data.prompts import medcalc_task
from forgetbench.data.records import make_record, normalize_prompt
from forgetbench.errors import ConfigError

_MAX_TRIES = 50  # draws per record before concluding the chosen calculators cannot give n distinct notes


# ---------------------------------------------------------------------------------------------- helpers


class _Patient:
    def __init__(self, rng: random.Random, ages=(18, 90), sex: str | None = None):
        self.age = rng.randint(*ages)
        self.sex = sex or rng.choice(("Male", "Female"))
        male = self.sex == "Male"
        child = self.age < 18
        self.noun = ("boy" if male else "girl") if child else ("man" if male else "woman")
        self.He, self.he = ("He", "he") if male else ("She", "she")
        self.His, self.his = ("His", "his") if male else ("Her", "her")
        article = "An" if str(self.age).startswith("8") or self.age in (11, 18) else "A"
        self.aged = f"{article} {self.age}-year-old"  # "An 81-year-old"
        self.intro = f"{self.aged} {self.noun}"

    def opening(self, rng: random.Random, settings: tuple[str, ...]) -> str:
        return f"{self.intro} {rng.choice(settings)}."


def _weight(rng: random.Random, lo: float, hi: float) -> tuple[tuple, str]:
    kg = round(rng.uniform(lo, hi), 1)
    if rng.random() < 0.5:
        return (kg, "kg"), f"{kg} kg"
    lbs = round(kg / 0.453592)
    return (lbs, "lbs"), f"{lbs} lbs"


def _height(rng: random.Random, sex: str) -> tuple[tuple, str]:
    cm = rng.randint(160, 195) if sex == "Male" else rng.randint(150, 182)
    unit = rng.choice(("cm", "in", "m", "ft"))
    if unit == "cm":
        return (cm, "cm"), f"{cm} cm"
    if unit == "m":
        return (round(cm / 100, 2), "m"), f"{cm / 100:.2f} m"
    inches = round(cm / 2.54)
    if unit == "in":
        return (inches, "in"), f"{inches} in"
    return (inches // 12, "ft", inches % 12, "in"), f"{inches // 12} ft {inches % 12} in"


def _body(rng: random.Random, sex: str) -> tuple[tuple, str, tuple, str]:
    """Height and weight that belong to one adult (BMI 16-45), each in a randomly chosen unit."""
    h, ht = _height(rng, sex)
    cm = {"cm": h[0], "m": h[0] * 100, "in": h[0] * 2.54}.get(h[1]) or (h[0] * 12 + h[2]) * 2.54
    kg = round(rng.uniform(16, 45) * (cm / 100) ** 2, 1)
    if rng.random() < 0.5:
        return h, ht, (kg, "kg"), f"{kg} kg"
    lbs = round(kg / 0.453592)
    return h, ht, (lbs, "lbs"), f"{lbs} lbs"


def _creatinine(rng: random.Random, lo=0.5, hi=4.0) -> tuple[tuple, str]:
    mg = rng.randint(round(lo * 10), round(hi * 10)) / 10
    if rng.random() < 0.6:
        return (mg, "mg/dL"), f"{mg} mg/dL"
    umol = round(mg * 88.42)  # medcalc converts this back to exactly `mg` (see module docstring)
    return (umol, "µmol/L"), f"{umol} µmol/L"


def _history(rng: random.Random, p: _Patient, items: list[tuple[str, str, float]]) -> tuple[dict, list[str]]:
    """Conditions as a medical-history sentence: each one present (prob p), stated absent, or not mentioned."""
    params, present, absent = {}, [], []
    for key, noun, prob in items:
        if rng.random() < prob:
            params[key] = True
            present.append(noun)
        elif rng.random() < 0.5:
            params[key] = False
            absent.append(noun)
    sentences = []
    if present:
        sentences.append(f"{p.His} past medical history is significant for {_join(present, 'and')}.")
    if absent:
        sentences.append(f"{p.He} has no history of {_join(absent, 'or')}.")
    return params, sentences


def _findings(rng: random.Random, p: _Patient, items: list[tuple[str, str, str, float]]) -> tuple[dict, list[str]]:
    """Like _history, for findings written as whole sentences (present sentence, absent sentence)."""
    params, sentences = {}, []
    for key, yes, no, prob in items:
        if rng.random() < prob:
            params[key] = True
            sentences.append(yes.format(He=p.He, he=p.he, His=p.His, his=p.his))
        elif rng.random() < 0.5:
            params[key] = False
            sentences.append(no.format(He=p.He, he=p.he, His=p.His, his=p.his))
    rng.shuffle(sentences)
    return params, sentences


def _join(items: list[str], word: str) -> str:
    return items[0] if len(items) == 1 else f"{', '.join(items[:-1])} {word} {items[-1]}"


def _note(*parts) -> str:
    flat = []
    for part in parts:
        flat.extend(part if isinstance(part, list) else [part])
    return " ".join(s for s in flat if s)


_CLINIC = (
    "presents to the outpatient clinic for a routine follow-up visit",
    "is seen by the primary care physician for an annual examination",
    "presents to the emergency department with shortness of breath",
    "is admitted to the medical ward with community-acquired pneumonia",
    "is evaluated before an elective knee replacement",
    "presents with two days of fatigue and decreased appetite",
    "is referred to the nephrology clinic",
    "is reviewed on the cardiology ward after an episode of palpitations",
)


# ---------------------------------------------------------------------------------- calculator samplers
# Each returns (params for the medcalc function, patient note). Parameter names are the package's own.


def _s_bmi(rng):
    p = _Patient(rng)
    h, ht, w, wt = _body(rng, p.sex)
    note = _note(p.opening(rng, _CLINIC), f"{p.He} weighs {wt} and is {ht} tall.",
                 f"{p.His} blood pressure is {rng.randint(105, 160)}/{rng.randint(60, 95)} mm Hg.")
    return {"weight": w, "height": h}, note


def _s_map(rng):
    p = _Patient(rng)
    sys_bp = rng.randint(85, 195)
    dia_bp = rng.randint(45, min(120, sys_bp - 20))
    note = _note(p.opening(rng, _CLINIC),
                 f"On examination, {p.his} blood pressure is {sys_bp}/{dia_bp} mm Hg, heart rate "
                 f"{rng.randint(55, 120)} beats per minute and respiratory rate {rng.randint(12, 24)} "
                 f"breaths per minute.")
    return {"sys_bp": (sys_bp, "mm hg"), "dia_bp": (dia_bp, "mm hg")}, note


def _s_crcl(rng):
    p = _Patient(rng, (20, 90))
    h, ht, w, wt = _body(rng, p.sex)
    cr, crt = _creatinine(rng)
    note = _note(p.opening(rng, _CLINIC), f"{p.He} is {ht} tall and weighs {wt}.",
                 f"Laboratory studies show a serum creatinine of {crt} and a potassium of "
                 f"{rng.randint(35, 52) / 10} mmol/L.")
    return {"sex": p.sex, "age": (p.age, "years"), "weight": w, "height": h, "creatinine": cr}, note


def _s_ckd_epi(rng):
    p = _Patient(rng, (18, 90))
    cr, crt = _creatinine(rng, 0.5, 6.0)
    note = _note(p.opening(rng, _CLINIC), f"A basic metabolic panel shows a serum creatinine of {crt}, "
                 f"sodium {rng.randint(133, 146)} mEq/L and BUN {rng.randint(8, 60)} mg/dL.")
    return {"sex": p.sex, "age": (p.age, "years"), "creatinine": cr}, note


def _s_mdrd(rng):
    p = _Patient(rng, (18, 90))
    cr, crt = _creatinine(rng, 0.5, 6.0)
    params = {"sex": p.sex, "age": (p.age, "years"), "creatinine": cr}
    race = rng.choice(("Black", "White", None))
    who = f"{p.aged} {race} {p.noun}" if race else p.intro
    if race:
        params["race"] = race
    note = _note(f"{who} {rng.choice(_CLINIC)}.", f"{p.His} serum creatinine is {crt}.")
    return params, note


def _s_anion_gap(rng):
    p = _Patient(rng)
    unit = rng.choice(("mEq/L", "mmol/L"))
    while True:  # electrolytes that belong together: a gap of 3-30 mEq/L, sodium 125-158
        cl, hco3 = rng.randint(88, 118), rng.randint(6, 32)
        na = cl + hco3 + rng.randint(3, 30)
        if 125 <= na <= 158:
            break
    note = _note(p.opening(rng, _CLINIC + ("presents with vomiting and abdominal pain",)),
                 f"Serum chemistry shows sodium {na} {unit}, chloride {cl} {unit}, bicarbonate {hco3} {unit} and "
                 f"glucose {rng.randint(70, 400)} mg/dL.")
    return {"sodium": (na, unit), "chloride": (cl, unit), "bicarbonate": (hco3, unit)}, note


def _s_calcium(rng):
    p = _Patient(rng)
    alb_gdl = rng.randint(15, 45) / 10
    albumin, alb_t = ((alb_gdl, "g/dL"), f"{alb_gdl} g/dL") if rng.random() < 0.6 else \
        ((round(alb_gdl * 10), "g/L"), f"{round(alb_gdl * 10)} g/L")
    ca = rng.randint(65, 115) / 10
    note = _note(p.opening(rng, _CLINIC + ("presents with muscle cramps and perioral tingling",)),
                 f"Laboratory results: serum calcium {ca} mg/dL, albumin {alb_t}, "
                 f"phosphate {rng.randint(25, 50) / 10} mg/dL.")
    return {"albumin": albumin, "calcium": (ca, "mg/dL")}, note


def _s_ldl(rng):
    p = _Patient(rng, (25, 85))
    while True:
        tc, hdl, tg = rng.randint(130, 320), rng.randint(25, 90), rng.randint(50, 399)
        if tc - hdl - tg / 5 >= 40:
            break
    note = _note(p.opening(rng, _CLINIC), f"A fasting lipid panel shows total cholesterol {tc} mg/dL, "
                 f"HDL cholesterol {hdl} mg/dL and triglycerides {tg} mg/dL.")
    params = {"total_cholestrol": (tc, "mg/dL"), "hdl_cholestrol": (hdl, "mg/dL"), "triglycerides": (tg, "mg/dL")}
    return params, note


def _s_qtc_bazett(rng):
    p = _Patient(rng)
    hr = rng.randint(45, 150)
    qt = round(rng.uniform(360, 520) * (60 / hr) ** 0.5)  # a QT that fits the rate (QTc 360-520 msec)
    note = _note(p.opening(rng, _CLINIC), f"A 12-lead ECG shows sinus rhythm at {hr} beats per minute "
                 f"with a QT interval of {qt} msec.")
    return {"heart_rate": (hr, "beats per minute"), "qt_interval": (qt, "msec")}, note


def _s_ibw(rng):
    p = _Patient(rng)
    h, ht, w, wt = _body(rng, p.sex)
    note = _note(p.opening(rng, _CLINIC), f"{p.He} is {ht} tall and weighs {wt}.")
    return {"sex": p.sex, "height": h}, note


def _s_free_water(rng):
    p = _Patient(rng, (18, 95))
    w, wt = _weight(rng, 40, 110)
    unit = rng.choice(("mEq/L", "mmol/L"))
    na = rng.randint(146, 172)
    note = _note(p.opening(rng, ("presents to the emergency department with confusion and poor oral intake",
                                 "is admitted from a nursing home with lethargy",
                                 "is found to be dehydrated after several days of diarrhea")),
                 f"{p.He} weighs {wt}. Serum sodium is {na} {unit}.")
    return {"sex": p.sex, "age": (p.age, "years"), "weight": w, "sodium": (na, unit)}, note


def _s_maintenance(rng):
    p = _Patient(rng, (1, 6))
    kg = round(rng.uniform(3.0, 19.5), 1)
    lbs = round(kg / 0.453592)
    # lbs only where the package's conversion stays <= 20 kg: the > 20 kg branch's explanation is wrong
    if rng.random() < 0.4 and lbs * 0.453592 <= 20:
        w, wt = (lbs, "lbs"), f"{lbs} lbs"
    else:
        w, wt = (kg, "kg"), f"{kg} kg"
    note = _note(p.opening(rng, ("is admitted with gastroenteritis and is unable to tolerate oral fluids",
                                 "is kept nil by mouth before a planned surgery",
                                 "presents with dehydration after a febrile illness")),
                 f"{p.His} weight is {wt}.")
    return {"weight": w}, note


def _s_cha2ds2(rng):
    p = _Patient(rng, (40, 92))
    params, hist = _history(rng, p, [
        ("chf", "congestive heart failure", 0.25), ("hypertension", "hypertension", 0.5),
        ("stroke", "an ischemic stroke", 0.15), ("tia", "a transient ischemic attack", 0.15),
        ("thromboembolism", "a prior pulmonary embolism", 0.1),
        ("vascular_disease", "peripheral arterial disease", 0.2),
        ("diabetes", "type 2 diabetes mellitus", 0.3),
    ])
    note = _note(f"{p.intro} with newly diagnosed atrial fibrillation is seen in the cardiology clinic.",
                 hist, f"{p.His} heart rate is {rng.randint(70, 140)} beats per minute, irregularly irregular.")
    return {"sex": p.sex, "age": (p.age, "years"), **params}, note


def _s_has_bled(rng):
    p = _Patient(rng, (40, 92))
    drinks = rng.choice((0, 0, 1, 2, 3, 5, 7, 8, 10, 12, 14))
    params, hist = _history(rng, p, [
        ("hypertension", "uncontrolled hypertension", 0.35), ("liver_disease_has_bled", "liver cirrhosis", 0.15),
        ("renal_disease_has_bled", "end-stage renal disease on dialysis", 0.15), ("stroke", "a prior stroke", 0.2),
        ("prior_bleeding", "a major gastrointestinal bleed", 0.2), ("labile_inr", "labile INRs on warfarin", 0.2),
    ])
    meds, meds_s = _findings(rng, p, [("medications_for_bleeding", "{He} takes aspirin daily.",
                                       "{He} takes no antiplatelet agents or NSAIDs.", 0.3)])
    drink_s = (f"{p.He} does not drink alcohol." if drinks == 0
               else f"{p.He} drinks about {drinks} alcoholic drinks per week.")
    note = _note(f"{p.intro} with atrial fibrillation is evaluated before starting anticoagulation.",
                 hist, meds_s, drink_s)
    return {"age": (p.age, "years"), "alcoholic_drinks": drinks, **params, **meds}, note


def _s_centor(rng):
    p = _Patient(rng, (3, 70))
    c = rng.randint(365, 401) / 10
    temp = ((c, "degrees celsius"), f"{c} °C") if rng.random() < 0.5 else \
        ((round(c * 9 / 5 + 32, 1), "degrees fahrenheit"), f"{round(c * 9 / 5 + 32, 1)} °F")
    params, finds = _findings(rng, p, [
        ("exudate_swelling_tonsils", "Examination shows swollen tonsils with white exudates.",
         "The tonsils are not enlarged and there is no exudate.", 0.5),
        ("tender_lymph_nodes", "The anterior cervical lymph nodes are tender and swollen.",
         "There is no cervical lymphadenopathy.", 0.5),
        ("cough_absent", "{He} denies any cough.", "{He} reports a dry cough.", 0.5),
    ])
    note = _note(f"{p.intro} presents with a sore throat for three days.",
                 f"{p.His} temperature is {temp[1]}.", finds)
    return {"age": (p.age, "years"), "temperature": temp[0], **params}, note


_GCS_EYE = {
    "eyes open spontaneously": "{His} eyes are open spontaneously",
    "eye opening to verbal command": "{He} opens {his} eyes when spoken to",
    "eye opening to pain": "{He} opens {his} eyes only to a sternal rub",
    "no eye opening": "{He} does not open {his} eyes, even to painful stimuli",
}
_GCS_VERBAL = {
    "oriented": "{he} is oriented to person, place and time",
    "confused": "{he} answers questions but is confused and disoriented",
    "inappropriate words": "{he} utters random inappropriate words",
    "incomprehensible sounds": "{he} makes only incomprehensible moaning sounds",
    "no verbal response": "{he} makes no verbal response",
}
_GCS_MOTOR = {
    "obeys commands": "{He} follows commands with all four limbs.",
    "localizes pain": "{He} localizes to a painful stimulus.",
    "withdrawal from pain": "{He} withdraws {his} arm from a painful stimulus.",
    "flexion to pain": "Painful stimulation produces abnormal flexion of the arms.",
    "extension to pain": "Painful stimulation produces extension of the arms and legs.",
    "no motor response": "There is no motor response to painful stimuli.",
}


def _s_gcs(rng):
    p = _Patient(rng, (16, 90))
    eye, verbal, motor = rng.choice(list(_GCS_EYE)), rng.choice(list(_GCS_VERBAL)), rng.choice(list(_GCS_MOTOR))
    f = dict(He=p.He, he=p.he, His=p.His, his=p.his)
    setting = rng.choice(("is brought to the emergency department after a fall from a ladder",
                          "is found unresponsive at home and brought in by ambulance",
                          "is brought in after a motor vehicle collision",
                          "is evaluated on the ward for a sudden decline in consciousness"))
    note = _note(f"{p.intro} {setting}.",
                 f"{_GCS_EYE[eye].format(**f)}, and {_GCS_VERBAL[verbal].format(**f)}.", _GCS_MOTOR[motor].format(**f),
                 f"{p.His} blood pressure is {rng.randint(90, 180)}/{rng.randint(50, 100)} mm Hg.")
    return {"best_eye_response": eye, "best_verbal_response": verbal, "best_motor_response": motor}, note


def _s_wells_pe(rng):
    p = _Patient(rng)
    hr = rng.randint(60, 135)
    params, finds = _findings(rng, p, [
        ("clinical_dvt", "{His} left calf is swollen and tender along the deep veins.",
         "There is no leg swelling or calf tenderness.", 0.25),
        ("pe_number_one", "Pulmonary embolism is considered the most likely diagnosis.",
         "An alternative diagnosis is considered more likely than pulmonary embolism.", 0.4),
        ("immobilization_for_3days", "{He} has been bedridden for the past five days.",
         "{He} has been fully mobile.", 0.2),
        ("surgery_in_past4weeks", "{He} underwent hip surgery two weeks ago.",
         "{He} has had no recent surgery.", 0.2),
        ("previous_pe", "{He} had a pulmonary embolism three years ago.",
         "{He} has never had a pulmonary embolism.", 0.15),
        ("previous_dvt", "{He} has a history of deep vein thrombosis.",
         "{He} has no history of deep vein thrombosis.", 0.15),
        ("hemoptysis", "{He} reports coughing up blood.", "{He} denies hemoptysis.", 0.2),
        ("malignancy_with_treatment", "{He} is receiving chemotherapy for breast cancer." if p.sex == "Female"
         else "{He} is receiving chemotherapy for colon cancer.", "{He} has no history of cancer.", 0.2),
    ])
    note = _note(f"{p.intro} presents with sudden pleuritic chest pain and dyspnea.",
                 f"{p.His} heart rate is {hr} beats per minute and oxygen saturation "
                 f"{rng.randint(86, 99)}% on room air.",
                 finds)
    return {"heart_rate": (hr, "beats per minute"), **params}, note


def _lmp(rng) -> date:
    return date(2015, 1, 1) + timedelta(days=rng.randint(0, 4000))


def _s_due_date(rng):
    p = _Patient(rng, (18, 44), "Female")
    lmp, cycle = _lmp(rng), rng.randint(28, 35)
    note = _note(f"{p.aged} woman presents for her first prenatal visit with a positive pregnancy test.",
                 f"Her last menstrual period began on {lmp:%m/%d/%Y}. Her cycles are regular, every {cycle} days.")
    return {"menstrual_date": f"{lmp:%m/%d/%Y}", "cycle_length": cycle}, note


def _s_conception(rng):
    p = _Patient(rng, (18, 44), "Female")
    lmp, cycle = _lmp(rng), rng.randint(25, 35)
    note = _note(f"{p.aged} woman is seen in the obstetrics clinic to date her pregnancy.",
                 f"Her last menstrual period was on {lmp:%m/%d/%Y} and her cycle length is {cycle} days.")
    return {"menstrual_date": f"{lmp:%m/%d/%Y}", "cycle_length": cycle}, note


# ------------------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Calculator:
    key: str
    name: str  # MedCalc-Bench's "Calculator Name"
    module: str  # medcalc.<module>
    function: str
    answer_type: str  # decimal | integer | date
    question: str  # MedCalc-Bench's question for this calculator
    sample: Callable[[random.Random], tuple[dict, str]]
    exact: bool = False  # a decimal that is a score: no tolerance


_GFR_Q = "what is the patient's Glomerular Filtration Rate (GFR) in terms of mL/min/1.73 m²?"
_DATE_Q = "Your response should be in the format of (M/D/Y) such as 08/31/2023."

CALCULATORS: dict[str, Calculator] = {c.key: c for c in (
    Calculator("bmi", "Body Mass Index (BMI)", "bmi_calculator", "bmi_calculator_explanation", "decimal",
               "What is the patient's body mass index (BMI)? Your answer should be in terms of kg/m².", _s_bmi),
    Calculator("map", "Mean Arterial Pressure (MAP)", "mean_arterial_pressure", "mean_arterial_pressure_explanation",
               "decimal", "What is patient's mean arterial pressure in mm Hg?", _s_map),
    Calculator("creatinine_clearance", "Creatinine Clearance (Cockcroft-Gault Equation)", "creatinine_clearance",
               "generate_cockcroft_gault_explanation", "decimal",
               "What is the patient's Creatinine Clearance using the Cockcroft-Gault Equation in terms of mL/min? "
               "You should use the patient's adjusted body weight in kg instead of the patient's actual body weight "
               "if the patient is overweight or obese based on their BMI. If the patient's BMI's normal, set their "
               "adjusted body weight to the minimum of the ideal body and actual weight. If the patient is "
               "underweight, please set their adjusted body weight to their actual body weight.", _s_crcl),
    Calculator("ckd_epi", "CKD-EPI Equations for Glomerular Filtration Rate", "ckd_epi_2021_creatinine",
               "ckd_epi_2021_explanation", "decimal", f"Using the 2021 CKD-EPI Creatinine equation, {_GFR_Q}",
               _s_ckd_epi),
    Calculator("mdrd_gfr", "MDRD GFR Equation", "mdrd_gfr", "mrdr_gfr_explanation", "decimal",
               f"Using the MDRD GFR equation, {_GFR_Q}", _s_mdrd),
    Calculator("anion_gap", "Anion Gap", "anion_gap", "compute_anion_gap_explanation", "decimal",
               "What is the patient's anion gap in terms of mEq/L?", _s_anion_gap),
    Calculator("calcium_correction", "Calcium Correction for Hypoalbuminemia", "calcium_correction",
               "calculate_corrected_calcium_explanation", "decimal",
               "Using the Calcium Correction for Hypoalbuminemia formula, what is the patient's corrected calcium in "
               "mg/dL? You may set the normal albumin concentration to be 4 g/dL.", _s_calcium),
    Calculator("ldl", "LDL Calculated", "ldl_calculated", "compute_ldl_explanation", "decimal",
               "What is the patient's LDL cholesterol concentration? Please output your answer in terms of mg/dL.",
               _s_ldl),
    Calculator("qtc_bazett", "QTc Bazett Calculator", "qt_calculator_bazett", "bazett_calculator_explanation",
               "decimal", "Using the Bazett Formula for corrected QT interval, what is the patient's corrected QT "
               "interval in terms of msec?", _s_qtc_bazett),
    Calculator("ideal_body_weight", "Ideal Body Weight", "ideal_body_weight", "ibw_explanation", "decimal",
               "Based on the patient's height and sex, what is the patient's ideal body weight in terms of kg?",
               _s_ibw),
    Calculator("free_water_deficit", "Free Water Deficit", "free_water_deficit", "free_water_deficit_explanation",
               "decimal", "What is the patient's free water deficit in terms of liters?", _s_free_water),
    Calculator("maintenance_fluids", "Maintenance Fluids Calculations", "maintenance_fluid_calc",
               "maintenance_fluid_explanation", "decimal",
               "Based on the patient's weight, what is the patient's maintenance fluid in mL/hr?", _s_maintenance),
    Calculator("cha2ds2_vasc", "CHA2DS2-VASc Score for Atrial Fibrillation Stroke Risk", "cha2ds2_vasc_score",
               "generate_cha2ds2_vasc_explanation", "integer", "What is the patient's CHA2DS2-VASc Score?", _s_cha2ds2),
    Calculator("has_bled", "HAS-BLED Score for Major Bleeding Risk", "has_bled_score",
               "compute_has_bled_score_explanation", "integer", "What is the patient's HAS-BLED score?", _s_has_bled),
    Calculator("centor", "Centor Score (Modified/McIsaac) for Strep Pharyngitis", "centor_score",
               "compute_centor_score_explanation", "integer", "What is the patient's Centor Score?", _s_centor),
    Calculator("gcs", "Glasgow Coma Score (GCS)", "glasgow_coma_score", "compute_glasgow_coma_score_explanation",
               "integer", "What is the patient's Glasgow Coma Score?", _s_gcs),
    Calculator("wells_pe", "Wells' Criteria for Pulmonary Embolism", "wells_criteria_pe",
               "calculate_pe_wells_explanation", "decimal",
               "What is the patient's score of Wells' criteria for Pulmonary Embolism?", _s_wells_pe, exact=True),
    Calculator("due_date", "Estimated Due Date", "estimated_due_date", "add_40_weeks_explanation", "date",
               "Using Naegele's Rule for estimated due date based on the last menstrual period and cycle length, "
               f"what is the patient's estimated due date? {_DATE_Q}", _s_due_date),
    Calculator("conception_date", "Estimated Date of Conception", "conception_date", "add_2_weeks_explanation",
               "date", f"Using the date of the last menstrual period, what is the patient's estimated date of "
               f"conception? {_DATE_Q}", _s_conception),
)}


@dataclass(frozen=True)
class RiskCategory:
    """The categories of a calculator's score: `bands` are (highest score in the band, label), in order; a
    score above the last band's bound takes `top`."""
    question: str
    bands: tuple[tuple[float, str], ...]
    top: str

    def label(self, score: float) -> str:
        return next((label for bound, label in self.bands if score <= bound), self.top)


# Cut-offs as tabulated with each score: CHA2DS2-VASc (Lip et al., 2010), HAS-BLED (Pisters et al., 2010),
# modified Centor / McIsaac (low: no test, moderate: rapid antigen test, high: test or treat), GCS (the
# severity bands of head injury), and two-tier Wells' PE (Wells et al., 2000: likely above 4 points).
RISK_CATEGORIES: dict[str, RiskCategory] = {
    "cha2ds2_vasc": RiskCategory("What is the patient's stroke risk category by the CHA2DS2-VASc score: low (0), "
                                 "moderate (1) or high (2 or more)?", ((0, "low"), (1, "moderate")), "high"),
    "has_bled": RiskCategory("What is the patient's bleeding risk category by the HAS-BLED score: low (0-1), "
                             "moderate (2) or high (3 or more)?", ((1, "low"), (2, "moderate")), "high"),
    "centor": RiskCategory("What is the patient's risk category for streptococcal pharyngitis by the Centor score: "
                           "low (1 or less), moderate (2-3) or high (4 or more)?", ((1, "low"), (3, "moderate")), "high"),
    "gcs": RiskCategory("What is the severity of the patient's brain injury by the Glasgow Coma Score: severe (3-8), "
                        "moderate (9-12) or mild (13-15)?", ((8, "severe"), (12, "moderate")), "mild"),
    "wells_pe": RiskCategory("Is pulmonary embolism likely or unlikely by the two-tier Wells' criteria (likely above "
                             "4 points)?", ((4, "unlikely"),), "likely"),
}
QUESTIONS = ("score", "risk_category")


def available_calculators() -> list[str]:
    """Keys accepted by `generate(calculators=...)`, in generation order."""
    return list(CALCULATORS)


def _function(calc: Calculator) -> Callable[[dict], dict]:
    try:
        module = importlib.import_module(f"medcalc.{calc.module}")
    except ImportError as exc:
        raise ConfigError(
            f"medcalc_synth needs the medcalc-bench package (pip install --no-deps medcalc-bench==1.7.0): {exc}"
        ) from None
    return getattr(module, calc.function)


def clean_explanation(text: str) -> str:
    """The calculator's explanation with template indentation and blank-line runs removed (some calculators
    build it from indented triple-quoted strings, one from a raw string with literal '\\n')."""
    lines = [line.strip() for line in str(text).replace("\\n", "\n").splitlines()]
    out: list[str] = []
    for line in lines:
        if line or (out and out[-1]):
            out.append(line)
    return "\n".join(out).strip()


def _answer_fields(calc: Calculator, answer) -> dict:
    if calc.answer_type == "date":
        return {"answer": str(answer), "lower": None, "upper": None}
    value = float(answer)
    if not math.isfinite(value):
        raise ValueError(f"non-finite answer {answer!r}")
    if calc.answer_type == "integer":
        return {"answer": str(int(value)), "lower": None, "upper": None}
    if calc.exact:
        return {"answer": str(answer), "lower": value, "upper": value}
    lo, hi = sorted((round(value * 0.95, 6), round(value * 1.05, 6)))
    return {"answer": str(answer), "lower": lo, "upper": hi}


def resolve(calculators, questions: str = "score") -> list[Calculator]:
    """The calculators to cycle through, refused in one line where unknown or without the questions asked."""
    if questions not in QUESTIONS:
        raise ConfigError(f"medcalc_synth: unknown questions '{questions}'; valid: {', '.join(QUESTIONS)}")
    offered = list(CALCULATORS) if questions == "score" else list(RISK_CATEGORIES)
    if calculators is None:
        return [CALCULATORS[c] for c in offered]
    if isinstance(calculators, str) or not list(calculators):
        raise ConfigError(f"medcalc_synth: calculators must be a non-empty list of: {', '.join(offered)}")
    unknown = [c for c in calculators if c not in CALCULATORS]
    if unknown:
        raise ConfigError(f"medcalc_synth: unknown calculator '{unknown[0]}'; available: {', '.join(CALCULATORS)}")
    uncategorised = [c for c in calculators if c not in offered]
    if uncategorised:
        raise ConfigError(f"medcalc_synth: calculator '{uncategorised[0]}' has no risk categories (questions: "
                          f"risk_category); those with categories: {', '.join(offered)}")
    return [CALCULATORS[c] for c in dict.fromkeys(calculators)]


def _question(calc: Calculator, questions: str) -> str:
    return calc.question if questions == "score" else RISK_CATEGORIES[calc.key].question


def _record_fields(calc: Calculator, out: dict, questions: str) -> dict:
    """The answer, its type and bounds, and the rationale of one record, from the calculator's output."""
    rationale = clean_explanation(out["Explanation"])
    if questions == "score":
        return {"rationale": rationale, "answer_type": calc.answer_type, **_answer_fields(calc, out["Answer"])}
    score = float(out["Answer"])
    label = RISK_CATEGORIES[calc.key].label(score)
    return {"answer": label, "answer_type": "label", "lower": None, "upper": None,
            "rationale": f"{rationale}\nA score of {score:g} is in the category '{label}'."}


def generate(n: int, seed: int, calculators: list[str] | None = None, questions: str = "score") -> list[dict]:
    """`n` canonical records, cycling through the chosen calculators (all that offer `questions` by default);
    deterministic for a seed, and no two records share a (normalised) prompt."""
    if int(n) < 0:
        raise ConfigError(f"medcalc_synth: n must be >= 0, got {n}")
    calcs = resolve(calculators, questions)
    funcs = {c.key: _function(c) for c in calcs}
    rng = random.Random(seed)
    records, seen = [], set()
    for i in range(int(n)):
        calc = calcs[i % len(calcs)]
        for _ in range(_MAX_TRIES):
            params, note = calc.sample(rng)
            prompt = medcalc_task(note, _question(calc, questions))
            if normalize_prompt(prompt) not in seen:
                break
        else:
            raise ConfigError(
                f"medcalc_synth: could not draw {n} distinct notes from calculators {', '.join(c.key for c in calcs)}; "
                f"ask for fewer records or more calculators"
            )
        seen.add(normalize_prompt(prompt))
        out = funcs[calc.key](dict(params))  # a copy: some calculators write defaults into their input
        records.append(make_record(id=f"medcalc_synth-{seed}-{i:05d}-{calc.key}", prompt=prompt, source=calc.name,
                                   **_record_fields(calc, out, questions)))
    return records


def make_splits(n_train: int, n_test: int, seed: int, calculators: list[str] | None = None,
                questions: str = "score"):
    """(train, test) from one generated stream: records are pairwise distinct, so the splits cannot overlap,
    and both cycle through the same calculators."""
    if int(n_train) < 1 or int(n_test) < 1:
        raise ConfigError(f"medcalc_synth: n_train and n_test must be >= 1, got {n_train} and {n_test}")
    records = generate(int(n_train) + int(n_test), seed, calculators, questions)
    return records[: int(n_train)], records[int(n_train):]

