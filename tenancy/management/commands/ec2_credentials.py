from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from tenancy import crypto, services
from tenancy.errors import DomainError
from tenancy.models import Project


class Command(BaseCommand):
    help = "EC2 access keys: create, list and revoke a user's keys; rotate the key that encrypts their secrets."

    def add_arguments(self, parser):
        commands = parser.add_subparsers(dest="command", required=True)
        create = commands.add_parser("create", help="A new access key; its secret is printed only this once.")
        create.add_argument("username")
        create.add_argument("--project", help="The project it acts for (default: the user's only project).")
        listing = commands.add_parser("list", help="The user's live access keys (never their secrets).")
        listing.add_argument("username")
        revoke = commands.add_parser("revoke", help="Revoke one of the user's access keys.")
        revoke.add_argument("username")
        revoke.add_argument("access")
        commands.add_parser(
            "rotate", help="Re-encrypt every stored secret with the first key of ADMINVMS_EC2_SECRET_KEYS."
        )
        commands.add_parser("new-key", help="Print a new key for ADMINVMS_EC2_SECRET_KEYS.")

    def handle(self, *args, command, **options):
        try:
            getattr(self, command.replace("-", "_"))(**options)
        except DomainError as exc:
            raise CommandError(exc.message) from exc

    def _user(self, username: str):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user '{username}'.")
        return user

    def create(self, *, username, project=None, **options):
        user = self._user(username)
        named = None
        if project is not None:
            named = Project.objects.filter(slug=project).first()
            if named is None:
                raise CommandError(f"No project '{project}'.")
        credential, secret = services.ec2_credential_create(user=user, project=named)
        self.stdout.write(f"access key:  {credential.access}\nsecret key:  {secret}")
        self.stdout.write(f"project:     {credential.project.slug if credential.project else '(named per request)'}")

    def list(self, *, username, **options):
        for credential in services.ec2_credential_list(user=self._user(username)):
            project = credential.project.slug if credential.project else "-"
            used = f"{credential.last_used_at:%Y-%m-%d %H:%M}" if credential.last_used_at else "never"
            self.stdout.write(f"{credential.access}  {project}  created {credential.created_at:%Y-%m-%d}  used {used}")

    def revoke(self, *, username, access, **options):
        services.ec2_credential_revoke(user=self._user(username), access=access)
        self.stdout.write(f"revoked {access}")

    def rotate(self, **options):
        self.stdout.write(f"re-encrypted {services.ec2_credentials_reencrypt()} secret(s)")

    def new_key(self, **options):
        self.stdout.write(crypto.generate_key())
