from django.core.management.base import BaseCommand, CommandError, CommandParser

from reports.importing import (
    FORMATS,
    ImportFileError,
    ImportResult,
    channel_username,
    import_reports_file,
)


class Command(BaseCommand):
    help = (
        "Imports scraped posts from Telegram Desktop exports (result.json), "
        "JSON Lines or CSV files, skipping posts already imported."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "files",
            nargs="+",
            metavar="FILE",
            help="Files to import; each is imported whole or not at all.",
        )
        parser.add_argument(
            "--format",
            choices=["auto", *FORMATS],
            default="auto",
            help="Format of every file; auto goes by suffix (.json, .jsonl, .csv).",
        )
        parser.add_argument(
            "--channel-url",
            help="Address of the channel a Telegram export comes from, "
            "https://t.me/NAME; needed when the export does not name it.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Check and count everything, write nothing.",
        )

    def handle(self, *args, **options) -> None:
        file_format = None if options["format"] == "auto" else options["format"]
        channel_url = options["channel_url"]
        if channel_url:
            try:
                channel_username(channel_url)
            except ImportFileError as exc:
                raise CommandError(str(exc)) from None

        results = []
        for path in options["files"]:
            result = self.import_one_file(
                path, file_format, channel_url, options["dry_run"]
            )
            self.write_result(result, options["verbosity"])
            results.append(result)

        self.stdout.write(self.style.SUCCESS(summary_line(results)))

    def import_one_file(
        self, path: str, file_format: str | None, channel_url: str | None, dry_run: bool
    ) -> ImportResult:
        try:
            return import_reports_file(
                path, file_format=file_format, channel_url=channel_url, dry_run=dry_run
            )
        except ImportFileError as exc:
            raise CommandError(f"{exc} Nothing from this file was imported.") from None

    def write_result(self, result: ImportResult, verbosity: int) -> None:
        verb = "would be imported" if result.dry_run else "imported"
        line = f"{result.path}: {result.imported} {verb}"
        if result.skipped:
            reasons = ", ".join(
                f"{count} {reason}"
                for reason, count in result.skipped_by_reason().items()
            )
            line += f", {len(result.skipped)} skipped ({reasons})"
        self.stdout.write(line + ".")

        if verbosity >= 2:
            for item in result.skipped:
                detail = f" ({item.detail})" if item.detail else ""
                self.stdout.write(f"  {item.record} skipped: {item.reason}{detail}")


def summary_line(results: list[ImportResult]) -> str:
    imported = sum(result.imported for result in results)
    skipped = sum(len(result.skipped) for result in results)
    files = f"{len(results)} file{'s' if len(results) != 1 else ''}"
    if results and results[0].dry_run:
        return (
            f"Dry run: {imported} reports would be imported from {files}, "
            f"{skipped} skipped; nothing was written."
        )
    return f"Imported {imported} reports from {files}, {skipped} skipped."
