"""The vocabularies a violation is recorded in, shared by the prompt and schema."""

from django.db import models


class ViolationType(models.TextChoices):
    AIRSTRIKE = "AIRSTRIKE", "Airstrike"
    CHEMICAL_ATTACK = "CHEMICAL_ATTACK", "Chemical attack"
    DETENTION = "DETENTION", "Detention"
    DISPLACEMENT = "DISPLACEMENT", "Displacement"
    EXECUTION = "EXECUTION", "Execution"
    SHELLING = "SHELLING", "Shelling"
    SIEGE = "SIEGE", "Siege"
    TORTURE = "TORTURE", "Torture"
    MURDER = "MURDER", "Murder"
    SHOOTING = "SHOOTING", "Shooting"
    HOME_INVASION = "HOME_INVASION", "Home invasion"
    EXPLOSION = "EXPLOSION", "Explosion"
    AMBUSH = "AMBUSH", "Ambush"
    KIDNAPPING = "KIDNAPPING", "Kidnapping"
    LANDMINE = "LANDMINE", "Landmine"
    OTHER = "OTHER", "Other"


class PerpetratorAffiliation(models.TextChoices):
    ASSAD_REGIME = "assad_regime", "Assad regime (before 8 December 2024)"
    POST_8TH_DECEMBER_GOVERNMENT = (
        "post_8th_december_government",
        "Government after 8 December 2024",
    )
    VARIOUS_ARMED_GROUPS = "various_armed_groups", "Various armed groups"
    ISIS = "isis", "ISIS"
    SDF = "sdf", "SDF"
    ISRAEL = "israel", "Israel"
    TURKEY = "turkey", "Turkey"
    DRUZE_MILITIAS = "druze_militias", "Druze militias"
    RUSSIA = "russia", "Russia"
    IRAN_SHIA_MILITIAS = "iran_shia_militias", "Iran and Shia militias"
    INTERNATIONAL_COALITION = "international_coalition", "International coalition"
    BEDOUINS = "bedouins", "Bedouins"
    UNKNOWN = "unknown", "Unknown"


class Certainty(models.TextChoices):
    POSSIBLE = "possible", "Possible"
    PROBABLE = "probable", "Probable"
    CONFIRMED = "confirmed", "Confirmed"


# Certainty only goes up on a merge; this is the order it goes up in.
CERTAINTY_RANK = {Certainty.POSSIBLE: 0, Certainty.PROBABLE: 1, Certainty.CONFIRMED: 2}


class VictimGender(models.TextChoices):
    MALE = "male", "Male"
    FEMALE = "female", "Female"
    UNKNOWN = "unknown", "Unknown"


class VictimStatus(models.TextChoices):
    CIVILIAN = "civilian", "Civilian"
    COMBATANT = "combatant", "Combatant"
    UNKNOWN = "unknown", "Unknown"


# The counted figures of a violation, in the order the admin shows them.
COUNT_FIELDS = ("casualties", "injured", "kidnapped", "detained", "displaced")
