"""Flask extensions, created unbound here and bound to the app in ``create_app``."""

from flask_login import LoginManager
from flask_mail import Mail
from flask_socketio import SocketIO
from flask_wtf.csrf import CSRFProtect

socketio = SocketIO()
mail = Mail()
csrf = CSRFProtect()
login_manager = LoginManager()
