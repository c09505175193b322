"""(being written)"""

from flask import Blueprint

blueprint = Blueprint("reports", __name__)
