from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('attacks', '0003_stored_sample_success'),
    ]

    operations = [
        migrations.AddField(
            model_name='adversarialsample',
            name='linf_displacement',
            field=models.FloatField(blank=True, help_text='metres: largest change of any coordinate (the L∞ budget used)', null=True),
        ),
        migrations.AddField(
            model_name='generationrun',
            name='calibration',
            field=models.JSONField(blank=True, default=dict, help_text='Set on a run chosen by calibrate_budget: the reference run and success it matched, the tolerance, and every budget tried with its success rate'),
        ),
        migrations.AddField(
            model_name='generationrun',
            name='preparation',
            field=models.JSONField(blank=True, default=dict, help_text="What the run's fixed parts were made from (CIASA: angle-box source, the clip ids its discriminator was trained on)"),
        ),
    ]
